// Signing keys of blueprint authors: ed25519 key pairs (tweetnacl) and their files,
// `{ "publicKey": "ed25519:BASE64", "secretKey": "BASE64" }`, readable by the owner only.
import { openSync, closeSync, writeSync, readFileSync, statSync } from 'node:fs';
import nacl from 'tweetnacl';
import { ZoneError } from '../appliance/errors.ts';
import { PUBLIC_KEY_PATTERN } from './schema.ts';

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

/** Writes a key file with mode 0600; refuses to overwrite an existing file (a key is not replaced by accident). */
export function writeSigningKey(path: string, pair: SigningKeyPair): void {
  const text = JSON.stringify({ publicKey: pair.publicKey, secretKey: Buffer.from(pair.secretKey).toString('base64') }, null, 2) + '\n';
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ZoneError('INVALID', code === 'EEXIST' ? `${path} exists; not overwriting a key file` : `cannot create ${path} (${code})`);
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * Throws ZoneError('INVALID') when others than the owner may read the file at `path`;
 * `label` starts the message (it names the file and what it holds).
 */
export function assertPrivateFile(path: string, label: string): void {
  const mode = statSync(path).mode;
  if ((mode & 0o077) !== 0) throw new ZoneError('INVALID', `${label} is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`);
}

/** Reads and checks a key file. Errors name the file and never contain key material. */
export function readSigningKey(path: string): SigningKeyPair {
  let text: string;
  try {
    assertPrivateFile(path, `${path}: key file`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ZoneError) throw err;
    throw new ZoneError('INVALID', `${path}: cannot read key file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ZoneError('INVALID', `${path}: not a key file (expected JSON with publicKey and secretKey)`);
  }
  const { publicKey, secretKey } = (data ?? {}) as Record<string, unknown>;
  if (typeof secretKey !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(secretKey)) {
    throw new ZoneError('INVALID', `${path}: secretKey must be base64 of 64 bytes`, '/secretKey');
  }
  const pair = signingKeyPairFromSecret(new Uint8Array(Buffer.from(secretKey, 'base64')));
  if (publicKey !== pair.publicKey) {
    throw new ZoneError('INVALID', `${path}: publicKey does not belong to secretKey`, '/publicKey');
  }
  return pair;
}
