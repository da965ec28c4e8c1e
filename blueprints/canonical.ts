// The bytes a blueprint signature covers: RFC 8785 (JSON Canonicalization Scheme) of
// the blueprint without `signatures`, after a domain tag so that a signature over a
// blueprint can never be replayed as any other kind of signed message.
import canonicalize from 'canonicalize';
import { ZoneError } from '../lib/errors.ts';
import type { Blueprint } from './schema.ts';
import { assertJsonValue } from './json-value.ts';

export const DOMAIN_TAG = 'zone-blueprint-v1\n';

/** A string RFC 8785 writes as it is between quotes: no quote, backslash, control character or surrogate. */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const NEEDS_ESCAPING = /["\\\u0000-\u001f\ud800-\udfff]/;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Thrown inside the fast writer for what only the library handles (toJSON, undefined, class instances). */
const UNUSUAL = Symbol('unusual value');

function jcsString(s: string): string {
  if (!NEEDS_ESCAPING.test(s)) return `"${s}"`;
  if (LONE_SURROGATE.test(s)) throw new ZoneError('INVALID', 'cannot canonicalise: Lone surrogate is not allowed', '/');
  // ECMAScript's JSON string serialisation is RFC 8785's (section 3.2.2.2).
  return JSON.stringify(s);
}

/**
 * RFC 8785 of plain JSON data, several times faster than the general library (most
 * strings need no escaping, most objects few keys); anything else throws UNUSUAL.
 */
function jcs(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return jcsString(value);
    case 'number':
      if (!Number.isFinite(value)) throw new ZoneError('INVALID', `cannot canonicalise: ${Number.isNaN(value) ? 'NaN' : 'Infinity'} is not allowed`, '/');
      // ECMAScript's Number-to-String is RFC 8785's number serialisation (section 3.2.2.3).
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + jcs(value[i]);
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if ((proto !== Object.prototype && proto !== null) || 'toJSON' in value) throw UNUSUAL;
      const object = value as Record<string, unknown>;
      // Array.prototype.sort compares UTF-16 code units: RFC 8785's order (section 3.2.3).
      const keys = Object.keys(object).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        out += `${i ? ',' : ''}${jcsString(key)}:${jcs(object[key])}`;
      }
      return `${out}}`;
    }
    default:
      throw UNUSUAL;
  }
}

/** RFC 8785 text of a JSON value; ZoneError('INVALID') for what RFC 8785 refuses (NaN, lone surrogates, ...). */
export function canonicalJson(value: unknown): string {
  try {
    return jcs(value);
  } catch (err) {
    if (err !== UNUSUAL) throw err;
  }
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new ZoneError('INVALID', `cannot canonicalise: ${(err as Error).message}`, '/');
  }
  if (text === undefined) throw new ZoneError('INVALID', 'nothing to canonicalise', '/');
  return text;
}

function unsignedOf(bp: unknown): Record<string, unknown> {
  if (bp === null || typeof bp !== 'object' || Array.isArray(bp)) {
    throw new ZoneError('INVALID', 'a blueprint is a JSON object', '/');
  }
  const { signatures: _signatures, ...unsigned } = bp as Record<string, unknown>;
  return unsigned;
}

/** Domain tag + RFC 8785 of the blueprint without `signatures`; the value must pass the blueprint bounds (json-value.ts). */
export function canonicalBytes(bp: Blueprint | unknown): Buffer {
  const unsigned = unsignedOf(bp);
  assertJsonValue(unsigned);
  return Buffer.from(DOMAIN_TAG + canonicalJson(unsigned), 'utf8');
}

/**
 * canonicalBytes of a blueprint validateBlueprintTelling has just accepted: within the
 * bounds already (not checked twice). When every object below the top one has its keys
 * in RFC 8785 order already (as `zone apply` sends them), each top-level value's
 * canonical text is its JSON.stringify: RFC 8785 is defined by ECMAScript's JSON
 * serialisation of strings and numbers, and the bounds refused what it would not
 * write alike (NaN, lone surrogates, undefined, non-plain objects).
 */
export function canonicalBytesOfValid(bp: Blueprint, nestedKeysInCanonicalOrder: boolean): Buffer {
  const unsigned = unsignedOf(bp);
  if (!nestedKeysInCanonicalOrder) return Buffer.from(DOMAIN_TAG + canonicalJson(unsigned), 'utf8');
  const keys = Object.keys(unsigned).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) out += `${i ? ',' : ''}${jcsString(keys[i]!)}:${JSON.stringify(unsigned[keys[i]!])}`;
  return Buffer.from(`${DOMAIN_TAG}${out}}`, 'utf8');
}
