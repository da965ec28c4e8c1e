// The bytes a blueprint signature covers: RFC 8785 (JSON Canonicalization Scheme) of
// the blueprint without `signatures`, after a domain tag so that a signature over a
// blueprint can never be replayed as any other kind of signed message.
import canonicalize from 'canonicalize';
import { ZoneError } from '../appliance/errors.ts';
import type { Blueprint } from './schema.ts';
import { assertJsonValue } from './json-value.ts';

export const DOMAIN_TAG = 'zone-blueprint-v1\n';

/** RFC 8785 text of any JSON value; throws ZoneError('INVALID') for what is not plain JSON data. */
export function canonicalJson(value: unknown): string {
  assertJsonValue(value);
  const text = canonicalize(value);
  if (text === undefined) throw new ZoneError('INVALID', 'nothing to canonicalise', '/');
  return text;
}

/** Domain tag + RFC 8785 of the blueprint without `signatures`. */
export function canonicalBytes(bp: Blueprint | unknown): Buffer {
  if (bp === null || typeof bp !== 'object' || Array.isArray(bp)) {
    throw new ZoneError('INVALID', 'a blueprint is a JSON object', '/');
  }
  const { signatures: _signatures, ...unsigned } = bp as Record<string, unknown>;
  return Buffer.from(DOMAIN_TAG + canonicalJson(unsigned), 'utf8');
}
