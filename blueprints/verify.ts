// The node's front door: a blueprint takes effect only when it is valid, carries
// only signatures that verify, reaches the trust policy's threshold with distinct
// trusted signers, is newer than what is stored, has not expired and is for this node.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ZoneError } from '../appliance/errors.ts';
import type { Blueprint } from './schema.ts';
import { canonicalBytes } from './canonical.ts';
import { parsePublicKey } from './keys.ts';
import type { TrustPolicy } from './policy.ts';
import { validateBlueprint } from './validate.ts';
import { parseDateTime } from './units.ts';

export interface VerifyContext {
  policy: TrustPolicy;
  nodeId: string;
  /** The stored version for (owner, name), or null when none is stored. */
  storedVersion(owner: string, name: string): number | null;
  now: Date;
}

/** DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// Keys are few (the policy's signers); building a KeyObject costs more than a verify.
const keyObjects = new Map<string, KeyObject>();
const KEY_CACHE_LIMIT = 1024;

function keyObject(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('base64');
  let key = keyObjects.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keyObjects.size >= KEY_CACHE_LIMIT) keyObjects.clear();
    keyObjects.set(id, key);
  }
  return key;
}

/** ed25519 verification through Node's crypto (OpenSSL); false for any malformed input. */
export function verifyEd25519(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return cryptoVerify(null, message, keyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** Checks signatures against the policy; returns the trusted signers counted. */
function checkSignatures(bp: Blueprint, policy: TrustPolicy): string[] {
  const signatures = bp.signatures ?? [];
  if (!signatures.length) throw new ZoneError('SIGNATURE', 'blueprint is not signed', '/signatures');
  const message = canonicalBytes(bp);
  signatures.forEach((s, i) => {
    // One signature per key: a repeated key could only be an attempt to count twice.
    if (signatures.findIndex((o) => o.key === s.key) < i) {
      throw new ZoneError('SIGNATURE', `${s.key} signs twice; one signature per key`, `/signatures/${i}/key`);
    }
    // Any signature that does not verify means the blueprint was altered: refuse it all.
    if (!verifyEd25519(message, Buffer.from(s.sig, 'base64'), parsePublicKey(s.key, `/signatures/${i}/key`))) {
      throw new ZoneError('SIGNATURE', `signature ${i} by ${s.key} does not verify over this blueprint`, `/signatures/${i}/sig`);
    }
  });
  const trusted = new Map(policy.signers.map((s) => [s.key, s]));
  const counted = signatures.map((s) => s.key).filter((k) => trusted.has(k));
  const weight = counted.reduce((sum, k) => sum + (trusted.get(k)?.weight ?? 0), 0);
  if (weight < policy.threshold) {
    throw new ZoneError('POLICY', `trusted signatures weigh ${weight}, the trust policy needs ${policy.threshold}` +
      (counted.length < signatures.length ? ` (${signatures.length - counted.length} signature(s) by untrusted keys count 0)` : ''), '/signatures');
  }
  return counted.map((k) => trusted.get(k)?.label ?? k);
}

/** The verified blueprint, or ZoneError with code INVALID / SIGNATURE / POLICY / STALE and the field. */
export function verifyBlueprint(input: unknown, ctx: VerifyContext): Blueprint {
  return verifyBlueprintWithSigners(input, ctx).blueprint;
}

/** verifyBlueprint, also returning who counted toward the threshold (their labels, or keys). */
export function verifyBlueprintWithSigners(input: unknown, ctx: VerifyContext): { blueprint: Blueprint; signers: string[] } {
  const bp = validateBlueprint(input);
  const signers = checkSignatures(bp, ctx.policy);
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
  return { blueprint: bp, signers };
}
