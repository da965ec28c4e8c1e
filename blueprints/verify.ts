// The node's front door: a blueprint takes effect only when it is valid, carries
// only signatures that verify, reaches the trust policy's threshold with distinct
// trusted signers allowed to act for its owner, is newer than what is stored, has
// not expired and is for this node.
import { ZoneError } from '../lib/errors.ts';
import type { Blueprint } from './schema.ts';
import { canonicalBytes, canonicalBytesOfValid } from './canonical.ts';
import { parsePublicKey, verifyEd25519 } from '../lib/ed25519.ts';
import { actsFor, type TrustPolicy } from './policy.ts';
import { openSealed } from './seal.ts';
import { sealedFields } from './sealed-fields.ts';
import { validateBlueprintTelling } from './validate.ts';
import { parseDateTime } from './units.ts';

export interface VerifyContext {
  policy: TrustPolicy;
  nodeId: string;
  /** The stored version for (owner, name), or null when none is stored. */
  storedVersion(owner: string, name: string): number | null;
  now: Date;
  /**
   * The node's box secret key: when given, every sealed value must open with it, bound
   * to this owner, node, blueprint and field; the clear values are dropped at once.
   */
  boxSecretKey?: Uint8Array;
}

/**
 * The signers (labels, or keys) that count toward the policy's threshold for this
 * blueprint: every signature must verify, and only trusted signers that act for the
 * blueprint's owner count. ZoneError SIGNATURE or POLICY otherwise. This is the whole
 * authority check, without version, expiry or node: a node re-runs it on stored
 * blueprints when it starts, under the policy it has then.
 */
export function authorizedSigners(bp: Blueprint, policy: TrustPolicy): string[] {
  return signersOver(bp, policy, () => canonicalBytes(bp));
}

/** authorizedSigners with the canonical bytes made by `message` (only when the blueprint is signed at all). */
function signersOver(bp: Blueprint, policy: TrustPolicy, message: () => Buffer): string[] {
  const signatures = bp.signatures ?? [];
  if (!signatures.length) throw new ZoneError('SIGNATURE', 'blueprint is not signed', '/signatures');
  const bytes = message();
  signatures.forEach((s, i) => {
    // One signature per key: a repeated key could only be an attempt to count twice.
    if (signatures.findIndex((o) => o.key === s.key) < i) {
      throw new ZoneError('SIGNATURE', `${s.key} signs twice; one signature per key`, `/signatures/${i}/key`);
    }
    // Any signature that does not verify means the blueprint was altered: refuse it all.
    if (!verifyEd25519(bytes, Buffer.from(s.sig, 'base64'), parsePublicKey(s.key, `/signatures/${i}/key`))) {
      throw new ZoneError('SIGNATURE', `signature ${i} by ${s.key} does not verify over this blueprint`, `/signatures/${i}/sig`);
    }
  });
  const trusted = new Map(policy.signers.map((s) => [s.key, s]));
  const signed = signatures.flatMap((s) => trusted.get(s.key) ?? []);
  const counted = signed.filter((s) => actsFor(s, bp.owner));
  const weight = counted.reduce((sum, s) => sum + s.weight, 0);
  if (weight < policy.threshold) {
    const untrusted = signatures.length - signed.length;
    const ungranted = signed.filter((s) => !actsFor(s, bp.owner));
    if (ungranted.length) {
      // The usual case of a copied or forged owner: name the owner and who may not act for it.
      throw new ZoneError('POLICY', `owner ${bp.owner} did not sign this blueprint, and ${ungranted.map((s) => s.label ?? s.key).join(', ')} may not act for it ` +
        `(signatures allowed for this owner weigh ${weight}, the trust policy needs ${policy.threshold}; a signer's "owners" in the trust policy grants it other owners)`, '/owner');
    }
    throw new ZoneError('POLICY', `trusted signatures weigh ${weight}, the trust policy needs ${policy.threshold}` +
      (untrusted ? ` (${untrusted} signature(s) by untrusted keys count 0)` : ''), '/signatures');
  }
  return counted.map((s) => s.label ?? s.key);
}

/** Refuses a sealed value that would not open here, at the place it sits (a copied ciphertext), naming the field. */
function checkSealedPlaces(bp: Blueprint, nodeId: string, boxSecretKey: Uint8Array): void {
  for (const { field, pointer, value } of sealedFields(bp)) {
    try {
      openSealed(value, boxSecretKey, { owner: bp.owner, node: nodeId, blueprint: bp.name, field });
    } catch (err) {
      if (err instanceof ZoneError) throw new ZoneError(err.code, err.message, pointer);
      throw err;
    }
  }
}

/** The verified blueprint, or ZoneError with code INVALID / SIGNATURE / POLICY / STALE and the field. */
export function verifyBlueprint(input: unknown, ctx: VerifyContext): Blueprint {
  return verifyBlueprintWithSigners(input, ctx).blueprint;
}

/** verifyBlueprint, also returning who counted toward the threshold (their labels, or keys). */
export function verifyBlueprintWithSigners(input: unknown, ctx: VerifyContext): { blueprint: Blueprint; signers: string[] } {
  const { blueprint: bp, nestedKeysInCanonicalOrder } = validateBlueprintTelling(input);
  // Validated just now: within the bounds, so the canonical bytes need not check them again.
  const signers = signersOver(bp, ctx.policy, () => canonicalBytesOfValid(bp, nestedKeysInCanonicalOrder));
  if (bp.node === '*' ? !ctx.policy.allowAnyNode : bp.node !== ctx.nodeId) {
    throw new ZoneError('POLICY', bp.node === '*' ? 'node "*" is not allowed by the trust policy' : `blueprint is for node ${bp.node}, this is node ${ctx.nodeId}`, '/node');
  }
  const stored = ctx.storedVersion(bp.owner, bp.name);
  if (stored !== null && bp.version <= stored) {
    throw new ZoneError('STALE', `version ${bp.version} is not greater than the stored version ${stored} (a replay or an older blueprint)`, '/version');
  }
  if (bp.expires !== undefined) {
    const expires = parseDateTime(bp.expires);
    if (!expires || expires.getTime() <= ctx.now.getTime()) throw new ZoneError('STALE', `blueprint expired at ${bp.expires}`, '/expires');
  }
  const { boxSecretKey } = ctx;
  if (boxSecretKey) checkSealedPlaces(bp, ctx.nodeId, boxSecretKey);
  return { blueprint: bp, signers };
}
