// Sealed secrets, format v2: `sealed:v2:` + base64(ephemeralPublicKey(32) || nonce(24) || box),
// a NaCl box (X25519 + XSalsa20-Poly1305) from a one-time sender key to the node's box
// key. The boxed text is JSON {owner, node, blueprint, field, value}: where the value may
// be used is authenticated with it, so a ciphertext copied to another owner, node,
// blueprint or field does not open there. No error here ever contains the clear value.
// Format v1 (`sealed:BASE64`, the bare value, no place) is refused: re-seal it.
import nacl from 'tweetnacl';
import { ZoneError } from '../lib/errors.ts';
import { NAME_PATTERN, SEALED_PATTERN } from './schema.ts';
import { PUBLIC_KEY_PATTERN } from '../lib/ed25519.ts';
import { SEALED_FIELD_PATTERN } from './sealed-fields.ts';

const PREFIX = 'sealed:v2:';
const KEY = nacl.box.publicKeyLength;
const NONCE = nacl.box.nonceLength;
const NODE_ID = /^[a-z0-9]{1,64}$/;
const RESEAL = 'zone seal --owner KEY --node ID --blueprint NAME --field PATH';

/** Where a sealed value may be opened. `blueprint` and `field` may be `*` (any of the owner's). */
export interface SealBinding {
  owner: string;
  node: string;
  blueprint: string;
  /** `workloads/NAME/env/VAR`, `networks/NAME/wireguard/privateKey`, `registries/HOST/password`, or `*`. */
  field: string;
}

/** Where a node is about to use a sealed value: no wildcards. */
export type SealedPlace = SealBinding;

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

/** The binding, or ZoneError('INVALID') naming the part that is not one. */
function checkBinding(b: SealBinding): SealBinding {
  if (!new RegExp(PUBLIC_KEY_PATTERN).test(b.owner)) throw new ZoneError('INVALID', `owner "${b.owner}" is not an ed25519:BASE64 public key`, 'owner');
  if (!NODE_ID.test(b.node)) throw new ZoneError('INVALID', `node "${b.node}" is not a node id (lower-case letters and digits, as GET /v1/node shows it)`, 'node');
  if (b.blueprint !== '*' && !new RegExp(NAME_PATTERN).test(b.blueprint)) throw new ZoneError('INVALID', `blueprint "${b.blueprint}" is not a blueprint name or *`, 'blueprint');
  if (!new RegExp(SEALED_FIELD_PATTERN).test(b.field)) {
    throw new ZoneError('INVALID', `field "${b.field}" is not workloads/NAME/env/VAR, networks/NAME/wireguard/privateKey, registries/HOST/password (in the node config) or *`, 'field');
  }
  return b;
}

/** Whether this is a format v1 value (no place inside): refused everywhere with a message to re-seal it. */
export function isUnboundSealed(value: string): boolean {
  return new RegExp(SEALED_PATTERN).test(value) && !value.startsWith(PREFIX);
}

export function sealSecret(clear: string, boxPublicKey: string, binding: SealBinding): string {
  const nodeKey = parseBoxPublicKey(boxPublicKey);
  const { owner, node, blueprint, field } = checkBinding(binding);
  const sender = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE);
  const text = JSON.stringify({ owner, node, blueprint, field, value: clear });
  const box = nacl.box(Buffer.from(text, 'utf8'), nonce, nodeKey, sender.secretKey);
  const sealed = PREFIX + Buffer.concat([sender.publicKey, nonce, box]).toString('base64');
  if (!new RegExp(SEALED_PATTERN).test(sealed)) throw new ZoneError('INVALID', 'secret is too long to seal into a blueprint field');
  return sealed;
}

/** The part of `bound` that does not admit `place`, as "blueprint a, not b"; null when it admits it. */
function mismatch(bound: SealBinding, place: SealedPlace): string | null {
  for (const part of ['owner', 'node', 'blueprint', 'field'] as const) {
    const wildcard = (part === 'blueprint' || part === 'field') && bound[part] === '*';
    if (!wildcard && bound[part] !== place[part]) return `${part} ${bound[part]}, not ${place[part]}`;
  }
  return null;
}

/**
 * The clear value of `value` when it is sealed to this node's key for `place`.
 * ZoneError INVALID (not a sealed value, old format), SIGNATURE (does not open with this
 * key: another node's, or altered) or POLICY (sealed for another place, which it names).
 */
export function openSealed(value: string, boxSecretKey: Uint8Array, place: SealedPlace): string {
  if (typeof value !== 'string' || !new RegExp(SEALED_PATTERN).test(value)) throw new ZoneError('INVALID', 'not a sealed value (expected sealed:v2:BASE64)');
  if (isUnboundSealed(value)) throw new ZoneError('INVALID', `sealed value in the old format (v1), not bound to a place: re-seal it with ${RESEAL}`);
  const bytes = new Uint8Array(Buffer.from(value.slice(PREFIX.length), 'base64'));
  if (bytes.length < KEY + NONCE + nacl.box.overheadLength) throw new ZoneError('INVALID', 'sealed value is too short');
  const opened = nacl.box.open(bytes.subarray(KEY + NONCE), bytes.subarray(KEY, KEY + NONCE), bytes.subarray(0, KEY), boxSecretKey);
  if (!opened) throw new ZoneError('SIGNATURE', 'sealed value does not open with this node\'s key (sealed to another node, or altered)');
  let sealed: Partial<SealBinding & { value: unknown }>;
  try {
    sealed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(opened)) as typeof sealed;
  } catch {
    throw new ZoneError('INVALID', 'sealed value does not hold a sealed:v2 record');
  }
  const { owner, node, blueprint, field, value: clear } = sealed;
  if (typeof clear !== 'string' || [owner, node, blueprint, field].some((s) => typeof s !== 'string')) {
    throw new ZoneError('INVALID', 'sealed value does not hold a sealed:v2 record');
  }
  const wrong = mismatch({ owner: owner!, node: node!, blueprint: blueprint!, field: field! }, place);
  if (wrong) throw new ZoneError('POLICY', `sealed value is bound to ${wrong}: it opens only where it was sealed for (re-seal it for this place)`);
  return clear;
}
