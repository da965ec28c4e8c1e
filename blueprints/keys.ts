// Signing keys of blueprint authors: ed25519 key pairs (tweetnacl) and their files,
// `{ "publicKey": "ed25519:BASE64", "secretKey": "BASE64" }`, readable by the owner only.
import { openSync, closeSync, writeSync, readFileSync, statSync } from 'node:fs';
import { ZoneError } from '../lib/errors.ts';
import { signingKeyPairFromSecret, type SigningKeyPair } from '../lib/ed25519.ts';

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
