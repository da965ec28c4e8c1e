// Optional read protection: `Authorization: Zone <payload>.<sig>` where payload is
// base64url of JSON {key, exp} and sig the ed25519 signature (base64url) of a domain
// tag + payload by a trusted key. Short-lived by construction: the node refuses a
// token whose expiry is further away than its maximum lifetime.
// Owner tokens (the grid routes) have the same shape under another domain tag, so
// that neither kind can be replayed as the other: the key that signs one is the
// owner it speaks for, and no trust policy is consulted.
import nacl from 'tweetnacl';
import { ZoneError } from '../appliance/errors.ts';
import { parsePublicKey, type SigningKeyPair } from '../blueprints/keys.ts';
import { verifyEd25519 } from '../blueprints/verify.ts';

/** A kind of token: its domain tag, its name in refusals, and what a request without one is told. */
interface TokenKind { tag: string; name: string; missing: string }
const READ: TokenKind = { tag: 'zone-read-token-v1\n', name: 'read', missing: 'this node requires a read token (Authorization: Zone ...)' };
const OWNER: TokenKind = { tag: 'zone-owner-token-v1\n', name: 'owner', missing: 'this route requires an owner token (Authorization: Zone ...)' };
export const DEFAULT_TOKEN_TTL_SECONDS = 300;

export interface ReadTokenOptions {
  /** `ed25519:BASE64` keys whose tokens are accepted. */
  keys: string[];
  /** Longest accepted lifetime left on a token (default 300 s). */
  maxTtlSeconds?: number;
}

const message = (payload: string, tag: string) => Buffer.from(tag + payload, 'utf8');

function makeToken(tag: string, pair: SigningKeyPair, ttlSeconds: number, now: number): string {
  const payload = Buffer.from(JSON.stringify({ key: pair.publicKey, exp: Math.floor(now / 1000) + ttlSeconds })).toString('base64url');
  const sig = Buffer.from(nacl.sign.detached(message(payload, tag), pair.secretKey)).toString('base64url');
  return `Zone ${payload}.${sig}`;
}

/** The Authorization header value of a token signed by `pair`, valid for `ttlSeconds`. */
export function makeReadToken(pair: SigningKeyPair, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  return makeToken(READ.tag, pair, ttlSeconds, now);
}

/** The Authorization header value that makes `pair`'s public key the owner of a grid call. */
export function makeOwnerToken(pair: SigningKeyPair, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  return makeToken(OWNER.tag, pair, ttlSeconds, now);
}

/**
 * The owner (`ed25519:BASE64`) a valid, unexpired owner token speaks for; throws
 * ZoneError('SIGNATURE') otherwise. Any key may sign one: it only ever reaches its own grid.
 */
export function checkOwnerToken(header: string | undefined, maxTtlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  return checkToken(header, OWNER, () => true, maxTtlSeconds, now);
}

/** Throws ZoneError('SIGNATURE') unless `header` is a valid, unexpired token of a trusted key. */
export function checkReadToken(header: string | undefined, options: ReadTokenOptions, now = Date.now()): void {
  checkToken(header, READ, (key) => options.keys.includes(key), options.maxTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS, now);
}

function checkToken(header: string | undefined, kind: TokenKind, trusted: (key: string) => boolean, maxTtlSeconds: number, now: number): string {
  const refuse = (reason: string) => new ZoneError('SIGNATURE', `${kind.name} token refused: ${reason}`, '/headers/authorization');
  const m = /^Zone ([A-Za-z0-9_-]{1,512})\.([A-Za-z0-9_-]{86})$/.exec(header ?? '');
  if (!m) throw refuse(header ? 'expected "Zone PAYLOAD.SIG"' : kind.missing);
  const [, payload, sig] = m as unknown as [string, string, string];
  let claims: { key?: unknown; exp?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    throw refuse('payload is not JSON');
  }
  if (typeof claims?.key !== 'string' || !trusted(claims.key)) throw refuse('not signed by a trusted key');
  let key: Uint8Array;
  try {
    key = parsePublicKey(claims.key);
  } catch {
    throw refuse('key is not ed25519:BASE64');
  }
  if (!verifyEd25519(message(payload, kind.tag), Buffer.from(sig, 'base64url'), key)) throw refuse('signature does not verify');
  const left = (typeof claims.exp === 'number' ? claims.exp : 0) - now / 1000;
  if (left <= 0) throw refuse('expired');
  if (left > maxTtlSeconds) throw refuse(`lives longer than the ${maxTtlSeconds} s this node accepts`);
  return claims.key;
}
