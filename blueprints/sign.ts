// Signing a blueprint: an ed25519 signature (tweetnacl) over its canonical bytes.
import nacl from 'tweetnacl';
import type { Blueprint } from './schema.ts';
import { canonicalBytes } from './canonical.ts';
import { signingKeyPairFromSecret } from '../lib/ed25519.ts';

/** Returns the blueprint with this key's signature appended; re-signing with the same key replaces it. */
export function signBlueprint(bp: Blueprint, secretKey: Uint8Array): Blueprint {
  const pair = signingKeyPairFromSecret(secretKey);
  const sig = Buffer.from(nacl.sign.detached(canonicalBytes(bp), pair.secretKey)).toString('base64');
  const others = (bp.signatures ?? []).filter((s) => s.key !== pair.publicKey);
  return { ...bp, signatures: [...others, { key: pair.publicKey, sig }] };
}
