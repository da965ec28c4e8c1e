// WireGuard keys: Curve25519, base64. tweetnacl's scalarMult is the X25519 function
// WireGuard uses, so no `wg genkey` process is needed.
import nacl from 'tweetnacl';

export const WIREGUARD_KEY_PATTERN = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/;

export interface WireguardKeyPair {
  /** base64; the secret, to be sealed before it goes anywhere. */
  privateKey: string;
  publicKey: string;
}

/** A fresh private key, clamped as `wg genkey` does, and its public key. */
export function generateWireguardKeyPair(): WireguardKeyPair {
  const secret = nacl.randomBytes(32);
  secret[0]! &= 248;
  secret[31]! = (secret[31]! & 127) | 64;
  const privateKey = Buffer.from(secret).toString('base64');
  return { privateKey, publicKey: wireguardPublicKey(privateKey) };
}

/** The public key of a base64 private key; throws (without the key) when it is not one. */
export function wireguardPublicKey(privateKey: string): string {
  if (!WIREGUARD_KEY_PATTERN.test(privateKey)) throw new RangeError('not a WireGuard private key (expected 32 bytes in base64)');
  return Buffer.from(nacl.scalarMult.base(new Uint8Array(Buffer.from(privateKey, 'base64')))).toString('base64');
}
