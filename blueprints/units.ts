// Sizes ("64Mi", "1G", "512") and durations ("5s", "250ms", "2m") as blueprints write them.

const SIZE_FACTORS: Record<string, number> = {
  '': 1,
  K: 1e3, M: 1e6, G: 1e9, T: 1e12,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
};

export const SIZE_PATTERN = '^[0-9]{1,15}(\\.[0-9]{1,6})?(Ki|Mi|Gi|Ti|K|M|G|T)?$';
export const DURATION_PATTERN = '^[0-9]{1,9}(ms|s|m|h)$';

const DURATION_FACTORS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Bytes of a size string; throws RangeError naming the value when it is not one. */
export function parseSize(value: string): number {
  const m = new RegExp(SIZE_PATTERN).exec(value);
  if (!m) throw new RangeError(`"${value}" is not a size (examples: 64Mi, 1Gi, 500M, 4096)`);
  const unit = m[2] ?? '';
  const factor = SIZE_FACTORS[unit] ?? 1;
  const bytes = Math.round(Number.parseFloat(value) * factor);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`"${value}" is too large a size`);
  return bytes;
}

/** Milliseconds of a duration string; throws RangeError naming the value when it is not one. */
export function parseDuration(value: string): number {
  const m = new RegExp(DURATION_PATTERN).exec(value);
  if (!m) throw new RangeError(`"${value}" is not a duration (examples: 250ms, 5s, 2m, 1h)`);
  return Number.parseInt(value, 10) * (DURATION_FACTORS[m[1] ?? 's'] ?? 1000);
}

/** RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z or 2027-01-01T01:00:00.5+01:00. */
export const DATE_TIME_PATTERN = '^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]{1,9})?([Zz]|[+-]([0-9]{2}):([0-9]{2}))$';

/** The instant of an RFC 3339 date-time, or null when it is not one or names no real day (2027-02-30). */
export function parseDateTime(value: string): Date | null {
  const m = new RegExp(DATE_TIME_PATTERN).exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const offsetOk = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59 || !offsetOk) return null;
  const at = new Date(value.toUpperCase());
  return Number.isNaN(at.getTime()) ? null : at;
}
