// Release versions (MAJOR.MINOR.PATCH) and Node engine ranges (`>=20`, `>=20.10 <23`,
// `^20.11.0`, alternatives joined by `||`): the small part of semver a node needs to
// refuse a downgrade or a release its Node cannot run.
import { ZoneError } from '../../lib/errors.ts';

type Triple = [number, number, number];

function parseTriple(text: string, partial: boolean): Triple | null {
  const m = (partial ? /^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?$/ : /^v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})$/).exec(text);
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

function compareTriples(a: Triple, b: Triple): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** <0, 0, >0 as `a` is older than, the same as, or newer than `b` (both MAJOR.MINOR.PATCH). */
export function compareVersions(a: string, b: string): number {
  const x = parseTriple(a, false);
  const y = parseTriple(b, false);
  if (!x || !y) throw new ZoneError('INVALID', `not a MAJOR.MINOR.PATCH version: ${x ? b : a}`, '/manifest/version');
  return Math.sign(compareTriples(x, y));
}

const COMPARATOR = /^(>=|<=|>|<|=|\^|~)?(.+)$/;

/** Whether Node `version` (e.g. process.versions.node) is within `range`; ZoneError('INVALID') for a range it cannot read. */
export function satisfiesEngine(version: string, range: string): boolean {
  const v = parseTriple(version, false);
  if (!v) throw new ZoneError('INVALID', `not a Node version: ${version}`);
  const unreadable = () => new ZoneError('INVALID', `release manifest: engines.node "${range}" is not a range this node reads (comparators >=, >, <=, <, =, ^, ~ of X[.Y[.Z]], joined by spaces or ||)`, '/manifest/engines/node');
  return range.split('||').some((alternative) => {
    const parts = alternative.trim().split(/\s+/).filter(Boolean);
    if (!parts.length) throw unreadable();
    return parts.every((part) => {
      const [, op = '=', rest = ''] = COMPARATOR.exec(part) ?? [];
      const t = parseTriple(rest, true);
      if (!t) throw unreadable();
      const c = compareTriples(v, t);
      switch (op) {
        case '>=': return c >= 0;
        case '>': return c > 0;
        case '<=': return c <= 0;
        case '<': return c < 0;
        case '^': return c >= 0 && v[0] === t[0];
        case '~': return c >= 0 && v[0] === t[0] && v[1] === t[1];
        default: return rest.split('.').length === 3 ? c === 0 : v[0] === t[0] && (rest.split('.').length === 1 || v[1] === t[1]);
      }
    });
  });
}
