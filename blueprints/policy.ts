// The node's trust policy: who may sign blueprints for this node, with what weight,
// and how much weight a blueprint needs. The owner field of a blueprint is only an
// identity (the namespace of its names); this policy alone decides what is accepted.
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ZoneError } from '../appliance/errors.ts';
import { PublicKey } from './schema.ts';
import { formatOfPath, parseBlueprintText } from './parse.ts';

export const TrustedSigner = Type.Object({
  key: PublicKey,
  weight: Type.Integer({ minimum: 1, maximum: 1000 }),
  label: Type.Optional(Type.String({ maxLength: 128 })),
}, { additionalProperties: false });

export const TrustPolicy = Type.Object({
  signers: Type.Array(TrustedSigner, { minItems: 1, maxItems: 256 }),
  threshold: Type.Integer({ minimum: 1, description: 'total weight of valid, distinct trusted signatures a blueprint needs' }),
  allowAnyNode: Type.Optional(Type.Boolean({ description: 'accept blueprints whose node is "*"' })),
}, { additionalProperties: false, $id: 'https://zone.dev/schemas/trust-policy-v1.json', title: 'Zone trust policy v1' });

export type TrustPolicy = Static<typeof TrustPolicy>;

/** The value as a TrustPolicy, or ZoneError('INVALID') naming the field. */
export function validateTrustPolicy(value: unknown): TrustPolicy {
  const [error] = Value.Errors(TrustPolicy, value);
  if (error) throw new ZoneError('INVALID', `trust policy: ${error.message.toLowerCase()}`, error.path || '/');
  const policy = value as TrustPolicy;
  const keys = policy.signers.map((s) => s.key);
  const repeat = keys.findIndex((k, i) => keys.indexOf(k) < i);
  if (repeat >= 0) throw new ZoneError('INVALID', 'trust policy: a signer key is listed twice', `/signers/${repeat}/key`);
  const total = policy.signers.reduce((sum, s) => sum + s.weight, 0);
  if (policy.threshold > total) {
    throw new ZoneError('INVALID', `trust policy: threshold ${policy.threshold} is more than all signers' weights together (${total}): nothing could be accepted`, '/threshold');
  }
  return policy;
}

/** Reads a trust policy file (JSON, or YAML for any other extension). Errors name the file. */
export function loadTrustPolicy(path: string): TrustPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ZoneError('INVALID', `${path}: cannot read trust policy (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return validateTrustPolicy(parseBlueprintText(text, formatOfPath(path)));
  } catch (err) {
    // One line for whoever loads the file: FILE: /field: reason.
    if (err instanceof ZoneError) throw new ZoneError('INVALID', [path, err.field, err.message].filter(Boolean).join(': '));
    throw err;
  }
}
