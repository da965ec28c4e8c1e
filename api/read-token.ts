// Optional read protection: `Authorization: Zone <payload>.<sig>` where payload is
// base64url of JSON {key, exp} and sig the ed25519 signature (base64url) of a domain
// tag + payload by a trusted key. Short-lived by construction: the node refuses a
// token whose expiry is further away than its maximum lifetime.
import nacl from 'tweetnacl';
import { ZoneError } from '../appliance/errors.ts';
import { parsePublicKey, type SigningKeyPair } from '../blueprints/keys.ts';
import { verifyEd25519 } from '../blueprints/verify.ts';

const TAG = 'zone-read-token-v1\n';
export const DEFAULT_TOKEN_TTL_SECONDS = 300;

export interface ReadTokenOptions {
  /** `ed25519:BASE64` keys whose tokens are accepted. */
  keys: string[];
  /** Longest accepted lifetime left on a token (default 300 s). */
  maxTtlSeconds?: number;
}

const message = (payload: string) => Buffer.from(TAG + payload, 'utf8');

/** The Authorization header value of a token signed by `pair`, valid for `ttlSeconds`. */
export function makeReadToken(pair: SigningKeyPair, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  const payload = Buffer.from(JSON.stringify({ key: pair.publicKey, exp: Math.floor(now / 1000) + ttlSeconds })).toString('base64url');
  const sig = Buffer.from(nacl.sign.detached(message(payload), pair.secretKey)).toString('base64url');
  return `Zone ${payload}.${sig}`;
}

const refuse = (reason: string) => new ZoneError('SIGNATURE', `read token refused: ${reason}`, '/headers/authorization');

/** Throws ZoneError('SIGNATURE') unless `header` is a valid, unexpired token of a trusted key. */
export function checkReadToken(header: string | undefined, options: ReadTokenOptions, now = Date.now()): void {
  const m = /^Zone ([A-Za-z0-9_-]{1,512})\.([A-Za-z0-9_-]{86})$/.exec(header ?? '');
  if (!m) throw refuse(header ? 'expected "Zone PAYLOAD.SIG"' : 'this node requires a read token (Authorization: Zone ...)');
  const [, payload, sig] = m as unknown as [string, string, string];
  let claims: { key?: unknown; exp?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    throw refuse('payload is not JSON');
  }
  if (typeof claims?.key !== 'string' || !options.keys.includes(claims.key)) throw refuse('not signed by a trusted key');
  if (!verifyEd25519(message(payload), Buffer.from(sig, 'base64url'), parsePublicKey(claims.key))) throw refuse('signature does not verify');
  const left = (typeof claims.exp === 'number' ? claims.exp : 0) - now / 1000;
  if (left <= 0) throw refuse('expired');
  if (left > (options.maxTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS)) throw refuse(`lives longer than the ${options.maxTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS} s this node accepts`);
}
