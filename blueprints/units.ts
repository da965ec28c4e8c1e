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
