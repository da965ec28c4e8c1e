// ed25519 keys as Zone writes them (`ed25519:BASE64`), key pairs (tweetnacl) and
// verification (Node's crypto): what blueprints, tokens and the CLI share.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { ZoneError } from './errors.ts';

/** An ed25519 public key as blueprints, policies and tokens write it. */
export const PUBLIC_KEY_PATTERN = '^ed25519:[A-Za-z0-9+/]{43}=$';

export interface SigningKeyPair {
  /** `ed25519:` + base64 of the 32-byte public key, as blueprints and trust policies write it. */
  publicKey: string;
  /** tweetnacl's 64-byte secret key (seed || public key). */
  secretKey: Uint8Array;
}

const PREFIX = 'ed25519:';

export function formatPublicKey(raw: Uint8Array): string {
  return PREFIX + Buffer.from(raw).toString('base64');
}

/** The 32 raw bytes of an `ed25519:BASE64` key; throws ZoneError('INVALID') naming `field`. */
export function parsePublicKey(key: string, field = '/key'): Uint8Array {
  if (typeof key !== 'string' || !new RegExp(PUBLIC_KEY_PATTERN).test(key)) {
    throw new ZoneError('INVALID', 'not an ed25519 public key (expected ed25519: and 44 base64 characters)', field);
  }
  return new Uint8Array(Buffer.from(key.slice(PREFIX.length), 'base64'));
}

export function generateSigningKeyPair(): SigningKeyPair {
  const pair = nacl.sign.keyPair();
  return { publicKey: formatPublicKey(pair.publicKey), secretKey: pair.secretKey };
}

/** The key pair whose secret key is `secretKey` (64 bytes, or a 32-byte seed). */
export function signingKeyPairFromSecret(secretKey: Uint8Array): SigningKeyPair {
  const pair = secretKey.length === 32 ? nacl.sign.keyPair.fromSeed(secretKey) : nacl.sign.keyPair.fromSecretKey(secretKey);
  return { publicKey: formatPublicKey(pair.publicKey), secretKey: pair.secretKey };
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
