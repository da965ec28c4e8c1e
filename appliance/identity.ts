// The node's identity: an ed25519 signing key (who the node is) and an X25519 box key
// (what operators seal secrets to), both created on first start and kept 0600 in the
// data directory. The node id is derived from the signing key, so it cannot be forged
// or drift from the key.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { assertPrivateFile, readSigningKey, writeSigningKey } from '../blueprints/keys.ts';
import { generateSigningKeyPair, parsePublicKey, type SigningKeyPair } from '../lib/ed25519.ts';
import { generateBoxKeyPair, type BoxKeyPair } from '../blueprints/seal.ts';
import { ZoneError } from '../lib/errors.ts';

export interface NodeIdentity {
  id: string;
  signing: SigningKeyPair;
  box: BoxKeyPair;
}

export const SIGNING_KEY_FILE = 'node.key';
export const BOX_KEY_FILE = 'box.key';
const NODE_ID_LENGTH = 20;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32, lower case, no padding: only [a-z2-7], as node ids need. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The node id of a signing public key (`ed25519:...`): 20 characters of base32(sha256(key)). */
export function nodeIdOf(publicKey: string): string {
  return base32(createHash('sha256').update(parsePublicKey(publicKey)).digest()).slice(0, NODE_ID_LENGTH);
}

function writeBoxKey(path: string, pair: BoxKeyPair): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify({ publicKey: pair.publicKey, secretKey: Buffer.from(pair.secretKey).toString('base64') }, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
}

function readBoxKey(path: string): BoxKeyPair {
  assertPrivateFile(path, `${path}: key file`);
  let secret: unknown;
  try {
    secret = (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>)?.secretKey;
  } catch {
    throw new ZoneError('INVALID', `${path}: not a box key file (expected JSON with publicKey and secretKey)`);
  }
  if (typeof secret !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(secret)) throw new ZoneError('INVALID', `${path}: secretKey must be base64 of 32 bytes`, '/secretKey');
  const pair = nacl.box.keyPair.fromSecretKey(new Uint8Array(Buffer.from(secret, 'base64')));
  return { publicKey: Buffer.from(pair.publicKey).toString('base64'), secretKey: pair.secretKey };
}

/** Reads the node's keys from `dataDir`, creating the missing ones (first start). */
export function loadOrCreateIdentity(dataDir: string): NodeIdentity {
  const signingPath = join(dataDir, SIGNING_KEY_FILE);
  const boxPath = join(dataDir, BOX_KEY_FILE);
  if (!existsSync(signingPath)) writeSigningKey(signingPath, generateSigningKeyPair());
  if (!existsSync(boxPath)) writeBoxKey(boxPath, generateBoxKeyPair());
  const signing = readSigningKey(signingPath);
  return { id: nodeIdOf(signing.publicKey), signing, box: readBoxKey(boxPath) };
}
