// Blueprints, keys and policies the blueprint tests share.
import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { ZoneError, type ZoneErrorCode } from '../../lib/errors.ts';
import { fileURLToPath } from 'node:url';
import { generateSigningKeyPair, type SigningKeyPair } from '../../lib/ed25519.ts';
import { parseBlueprintText, validateBlueprint } from '../../blueprints/parse.ts';
import type { TrustedSigner, TrustPolicy } from '../../blueprints/policy.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import type { VerifyContext } from '../../blueprints/verify.ts';

export const EXAMPLE_PATH = fileURLToPath(new URL('../../blueprints/examples/video-pipeline.yaml', import.meta.url));
export const EXAMPLE_YAML = readFileSync(EXAMPLE_PATH, 'utf8');

/** The example blueprint, owned by `owner`. */
export function exampleBlueprint(owner: SigningKeyPair): Blueprint {
  const bp = validateBlueprint(parseBlueprintText(EXAMPLE_YAML, 'yaml'));
  return { ...bp, owner: owner.publicKey };
}

export function policyOf(signers: { pair: SigningKeyPair; weight: number; label?: string; owners?: TrustedSigner['owners'] }[], threshold: number, allowAnyNode = false): TrustPolicy {
  return {
    signers: signers.map((s) => ({ key: s.pair.publicKey, weight: s.weight, ...(s.label ? { label: s.label } : {}), ...(s.owners ? { owners: s.owners } : {}) })),
    threshold,
    allowAnyNode,
  };
}

export function contextFor(policy: TrustPolicy, overrides: Partial<VerifyContext> = {}): VerifyContext {
  return { policy, nodeId: 'node1', storedVersion: () => null, now: new Date('2026-06-01T00:00:00Z'), ...overrides };
}

export const keys = { alice: generateSigningKeyPair(), bob: generateSigningKeyPair(), carol: generateSigningKeyPair(), mallory: generateSigningKeyPair() };

/** Asserts that `fn` throws a ZoneError with `code` (and a message matching `reason`, on `field`); any other exception fails. */
export function refused(t: Test, fn: () => unknown, code: ZoneErrorCode, reason?: RegExp, field?: string): void {
  try {
    fn();
    t.fail(`expected a ${code} refusal`);
  } catch (err) {
    if (!(err instanceof ZoneError)) {
      t.fail(`a ${(err as Error)?.constructor?.name} escaped: ${(err as Error)?.message}`);
      return;
    }
    t.equal(err.code, code, err.message);
    if (reason) t.match(err.message, reason);
    if (field) t.equal(err.field, field);
  }
}
