// The guard every blueprint value passes before it is validated or canonicalised:
// plain JSON data only, within bounds, so a hostile input is refused with a reason
// instead of costing memory, a stack overflow or a prototype change.
import { ZoneError } from '../lib/errors.ts';

export const LIMITS = {
  /** Text of one blueprint (YAML or JSON). */
  maxTextBytes: 1024 * 1024,
  /** Nesting of objects and arrays; a v1 blueprint needs 6. */
  maxDepth: 32,
  maxStringLength: 65536,
  maxArrayLength: 4096,
  maxObjectKeys: 1024,
  /** Values of one blueprint in all (scalars, objects, arrays; YAML: also the items and pairs as they are read). */
  maxNodes: 20_000,
  /** YAML aliases (`*name`) in one text. */
  maxAliases: 64,
} as const;

/** Keys that mean something to JavaScript objects; no blueprint field is called so. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** JSON pointer segment escaping (RFC 6901). */
export function pointer(parent: string, key: string | number): string {
  return `${parent}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

// With the u flag a surrogate pair is one code point, so only a lone surrogate matches.
const LONE_SURROGATE = /\p{Surrogate}/u;

function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

/**
 * Throws ZoneError('INVALID', reason, field) unless `value` is plain JSON data within
 * LIMITS: objects, arrays, strings, finite numbers no larger than 2^53, booleans, null;
 * ZoneError('TOO_LARGE') past LIMITS.maxNodes values. Stops at the first problem, so
 * its cost is bounded by the limits, not by the size of the value. Tells on the way
 * whether every object below the top one has its keys in RFC 8785 order already (then
 * JSON.stringify of it is its canonical text: see canonical.ts).
 */
export function assertJsonValue(value: unknown): { nestedKeysInCanonicalOrder: boolean } {
  const seen = { nodes: 0, unordered: false };
  checkValue(value, [], 0, seen);
  return { nestedKeysInCanonicalOrder: !seen.unordered };
}

/** The pointer of the keys walked so far: made only for an error, not at every value (most of the cost otherwise). */
function where(path: readonly (string | number)[]): string {
  return path.reduce<string>(pointer, '') || '/';
}

/** Whether the keys are in RFC 8785 order: `<` on strings compares UTF-16 code units. */
function inCanonicalOrder(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) return false;
  return true;
}

function checkValue(value: unknown, path: (string | number)[], depth: number, seen: { nodes: number; unordered: boolean }): void {
  if (depth > LIMITS.maxDepth) throw new ZoneError('INVALID', `nested deeper than ${LIMITS.maxDepth} levels`, where(path));
  if (++seen.nodes > LIMITS.maxNodes) throw new ZoneError('TOO_LARGE', `more than ${LIMITS.maxNodes} values`, where(path));
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ZoneError('INVALID', 'not a finite number', where(path));
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new ZoneError('INVALID', `number beyond 2^53 cannot be represented exactly (at most ${Number.MAX_SAFE_INTEGER})`, where(path));
    }
    return;
  }
  if (typeof value === 'string') {
    if (value.length > LIMITS.maxStringLength) throw new ZoneError('INVALID', `string longer than ${LIMITS.maxStringLength} characters`, where(path));
    if (hasLoneSurrogate(value)) throw new ZoneError('INVALID', 'string contains a lone UTF-16 surrogate (not valid Unicode)', where(path));
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayLength) throw new ZoneError('INVALID', `array longer than ${LIMITS.maxArrayLength} items`, where(path));
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      checkValue(value[i], path, depth + 1, seen);
      path.pop();
    }
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw new ZoneError('INVALID', 'not a plain JSON object', where(path));
    const keys = Object.keys(value);
    if (keys.length > LIMITS.maxObjectKeys) throw new ZoneError('INVALID', `object with more than ${LIMITS.maxObjectKeys} keys`, where(path));
    if (depth > 0 && !seen.unordered && !inCanonicalOrder(keys)) seen.unordered = true;
    for (const key of keys) {
      if (key.length > 256 || hasLoneSurrogate(key)) throw new ZoneError('INVALID', 'key is too long or not valid Unicode', where(path));
      path.push(key);
      if (FORBIDDEN_KEYS.has(key)) throw new ZoneError('INVALID', `key "${key}" is not allowed`, where(path));
      checkValue((value as Record<string, unknown>)[key], path, depth + 1, seen);
      path.pop();
    }
    return;
  }
  throw new ZoneError('INVALID', `a ${typeof value} is not JSON data`, where(path));
}
