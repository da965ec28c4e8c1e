// The node's trust policy: who may sign blueprints for this node, with what weight,
// for which owners, and how much weight a blueprint needs. A signer acts for its own
// key and for the owners its `owners` grant lists ("*": any owner); a signature counts
// toward the threshold only for a blueprint whose owner the signer acts for.
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { ZoneError } from '../lib/errors.ts';
import { PublicKey } from './schema.ts';
import { formatOfPath, parseBlueprintText } from './parse.ts';

export const TrustedSigner = Type.Object({
  key: PublicKey,
  weight: Type.Integer({ minimum: 1, maximum: 1000 }),
  label: Type.Optional(Type.String({ maxLength: 128 })),
  owners: Type.Optional(Type.Union([
    Type.Literal('*'),
    Type.Array(PublicKey, { minItems: 1, maxItems: 4096 }),
  ], { description: '"*" (any owner) or a list of the owners (ed25519:BASE64) this signer may sign for besides its own key; absent: only its own key' })),
}, { additionalProperties: false });

export const TrustPolicy = Type.Object({
  signers: Type.Array(TrustedSigner, { minItems: 1, maxItems: 256 }),
  threshold: Type.Integer({ minimum: 1, description: 'total weight of valid, distinct trusted signatures a blueprint needs' }),
  allowAnyNode: Type.Optional(Type.Boolean({ description: 'accept blueprints whose node is "*"' })),
  releases: Type.Optional(Type.Object({
    signers: Type.Array(Type.Object({ key: PublicKey, weight: Type.Integer({ minimum: 1, maximum: 1000 }), label: Type.Optional(Type.String({ maxLength: 128 })) }, { additionalProperties: false }), { minItems: 1, maxItems: 256 }),
    threshold: Type.Integer({ minimum: 1 }),
  }, { additionalProperties: false, description: 'who signs releases of the node software (zone release sign) and the weight a release needs; absent: the blueprint signers and threshold' })),
}, { additionalProperties: false, $id: 'https://zone.dev/schemas/trust-policy-v1.json', title: 'Zone trust policy v1' });

export type TrustPolicy = Static<typeof TrustPolicy>;
export type TrustedSigner = Static<typeof TrustedSigner>;

/** Whether `signer` may sign blueprints of `owner`: its own key always, others only by grant. */
export function actsFor(signer: TrustedSigner, owner: string): boolean {
  return signer.key === owner || signer.owners === '*' || (signer.owners?.includes(owner) ?? false);
}

/** The value as a TrustPolicy, or ZoneError('INVALID') naming the field. */
export function validateTrustPolicy(value: unknown): TrustPolicy {
  const [error] = Value.Errors(TrustPolicy, value);
  if (error) {
    // A union's own message ("expected union value") says nothing: its description says what is accepted.
    const union = error.type === ValueErrorType.Union && typeof error.schema.description === 'string';
    throw new ZoneError('INVALID', `trust policy: ${union ? `expected ${error.schema.description}` : error.message.toLowerCase()}`, error.path || '/');
  }
  const policy = value as TrustPolicy;
  const keys = policy.signers.map((s) => s.key);
  const repeat = keys.findIndex((k, i) => keys.indexOf(k) < i);
  if (repeat >= 0) throw new ZoneError('INVALID', 'trust policy: a signer key is listed twice', `/signers/${repeat}/key`);
  const total = policy.signers.reduce((sum, s) => sum + s.weight, 0);
  if (policy.threshold > total) {
    throw new ZoneError('INVALID', `trust policy: threshold ${policy.threshold} is more than all signers' weights together (${total}): nothing could be accepted`, '/threshold');
  }
  if (policy.releases) {
    const releaseTotal = policy.releases.signers.reduce((sum, s) => sum + s.weight, 0);
    if (policy.releases.threshold > releaseTotal) {
      throw new ZoneError('INVALID', `trust policy: releases.threshold ${policy.releases.threshold} is more than the release signers' weights together (${releaseTotal})`, '/releases/threshold');
    }
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
