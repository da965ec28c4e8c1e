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
 * its cost is bounded by the limits, not by the size of the value.
 */
export function assertJsonValue(value: unknown): void {
  checkValue(value, '', 0, { nodes: 0 });
}

function checkValue(value: unknown, path: string, depth: number, seen: { nodes: number }): void {
  if (depth > LIMITS.maxDepth) throw new ZoneError('INVALID', `nested deeper than ${LIMITS.maxDepth} levels`, path || '/');
  if (++seen.nodes > LIMITS.maxNodes) throw new ZoneError('TOO_LARGE', `more than ${LIMITS.maxNodes} values`, path || '/');
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ZoneError('INVALID', 'not a finite number', path || '/');
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new ZoneError('INVALID', `number beyond 2^53 cannot be represented exactly (at most ${Number.MAX_SAFE_INTEGER})`, path || '/');
    }
    return;
  }
  if (typeof value === 'string') {
    if (value.length > LIMITS.maxStringLength) throw new ZoneError('INVALID', `string longer than ${LIMITS.maxStringLength} characters`, path || '/');
    if (hasLoneSurrogate(value)) throw new ZoneError('INVALID', 'string contains a lone UTF-16 surrogate (not valid Unicode)', path || '/');
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayLength) throw new ZoneError('INVALID', `array longer than ${LIMITS.maxArrayLength} items`, path || '/');
    value.forEach((item, i) => checkValue(item, pointer(path, i), depth + 1, seen));
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw new ZoneError('INVALID', 'not a plain JSON object', path || '/');
    const keys = Object.keys(value);
    if (keys.length > LIMITS.maxObjectKeys) throw new ZoneError('INVALID', `object with more than ${LIMITS.maxObjectKeys} keys`, path || '/');
    for (const key of keys) {
      const at = pointer(path, key);
      if (FORBIDDEN_KEYS.has(key)) throw new ZoneError('INVALID', `key "${key}" is not allowed`, at);
      if (key.length > 256 || hasLoneSurrogate(key)) throw new ZoneError('INVALID', 'key is too long or not valid Unicode', path || '/');
      checkValue((value as Record<string, unknown>)[key], at, depth + 1, seen);
    }
    return;
  }
  throw new ZoneError('INVALID', `a ${typeof value} is not JSON data`, path || '/');
}
