// Sealed secrets: `sealed:` + base64(ephemeralPublicKey(32) || nonce(24) || box), a
// NaCl box (X25519 + XSalsa20-Poly1305) from a one-time sender key to the node's box
// key. Only the node can open it; no error here ever contains the clear value.
import nacl from 'tweetnacl';
import { ZoneError } from '../appliance/errors.ts';
import { SEALED_PATTERN } from './schema.ts';

const PREFIX = 'sealed:';
const KEY = nacl.box.publicKeyLength;
const NONCE = nacl.box.nonceLength;

export interface BoxKeyPair {
  /** base64 of the 32-byte X25519 public key (what `zone seal --node-key` takes). */
  publicKey: string;
  secretKey: Uint8Array;
}

export function generateBoxKeyPair(): BoxKeyPair {
  const pair = nacl.box.keyPair();
  return { publicKey: Buffer.from(pair.publicKey).toString('base64'), secretKey: pair.secretKey };
}

/** The 32 bytes of a base64 X25519 public key; throws ZoneError('INVALID') otherwise. */
export function parseBoxPublicKey(key: string): Uint8Array {
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(key)) {
    throw new ZoneError('INVALID', 'node box key must be base64 of 32 bytes (44 characters), as GET /v1/node shows it');
  }
  return new Uint8Array(Buffer.from(key, 'base64'));
}

export function sealSecret(clear: string, boxPublicKey: string): string {
  const nodeKey = parseBoxPublicKey(boxPublicKey);
  const sender = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE);
  const box = nacl.box(Buffer.from(clear, 'utf8'), nonce, nodeKey, sender.secretKey);
  const sealed = PREFIX + Buffer.concat([sender.publicKey, nonce, box]).toString('base64');
  if (!new RegExp(SEALED_PATTERN).test(sealed)) throw new ZoneError('INVALID', 'secret is too long to seal into a blueprint field');
  return sealed;
}

export function openSealed(value: string, boxSecretKey: Uint8Array): string {
  if (typeof value !== 'string' || !new RegExp(SEALED_PATTERN).test(value)) throw new ZoneError('INVALID', 'not a sealed value (expected sealed:BASE64)');
  const bytes = new Uint8Array(Buffer.from(value.slice(PREFIX.length), 'base64'));
  if (bytes.length < KEY + NONCE + nacl.box.overheadLength) throw new ZoneError('INVALID', 'sealed value is too short');
  const clear = nacl.box.open(bytes.subarray(KEY + NONCE), bytes.subarray(KEY, KEY + NONCE), bytes.subarray(0, KEY), boxSecretKey);
  if (!clear) throw new ZoneError('SIGNATURE', 'sealed value does not open with this node\'s key (sealed to another node, or altered)');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(clear);
  } catch {
    throw new ZoneError('INVALID', 'sealed value is not UTF-8 text');
  }
}
