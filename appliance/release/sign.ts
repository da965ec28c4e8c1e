// Signing a release: an ed25519 signature over its manifest's signing bytes.
import nacl from 'tweetnacl';
import { signingKeyPairFromSecret } from '../../lib/ed25519.ts';
import { releaseSigningBytes, type SignedRelease } from './manifest.ts';

/** The release with this key's signature added; signing again with the same key replaces it. */
export function signRelease(release: SignedRelease, secretKey: Uint8Array): SignedRelease {
  const pair = signingKeyPairFromSecret(secretKey);
  const sig = Buffer.from(nacl.sign.detached(releaseSigningBytes(release.manifest), pair.secretKey)).toString('base64');
  const others = (release.signatures ?? []).filter((s) => s.key !== pair.publicKey);
  return { ...release, signatures: [...others, { key: pair.publicKey, sig }] };
}
