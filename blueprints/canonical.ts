// The bytes a blueprint signature covers: RFC 8785 (JSON Canonicalization Scheme) of
// the blueprint without `signatures`, after a domain tag so that a signature over a
// blueprint can never be replayed as any other kind of signed message.
import canonicalize from 'canonicalize';
import { ZoneError } from '../lib/errors.ts';
import type { Blueprint } from './schema.ts';
import { assertJsonValue } from './json-value.ts';

export const DOMAIN_TAG = 'zone-blueprint-v1\n';

/** RFC 8785 text of a JSON value; ZoneError('INVALID') for what RFC 8785 refuses (NaN, lone surrogates, ...). */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new ZoneError('INVALID', `cannot canonicalise: ${(err as Error).message}`, '/');
  }
  if (text === undefined) throw new ZoneError('INVALID', 'nothing to canonicalise', '/');
  return text;
}

/** Domain tag + RFC 8785 of the blueprint without `signatures`; the value must pass the blueprint bounds (json-value.ts). */
export function canonicalBytes(bp: Blueprint | unknown): Buffer {
  if (bp === null || typeof bp !== 'object' || Array.isArray(bp)) {
    throw new ZoneError('INVALID', 'a blueprint is a JSON object', '/');
  }
  const { signatures: _signatures, ...unsigned } = bp as Record<string, unknown>;
  assertJsonValue(unsigned);
  return Buffer.from(DOMAIN_TAG + canonicalJson(unsigned), 'utf8');
}
