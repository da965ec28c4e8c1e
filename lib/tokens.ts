// Tokens: `Authorization: Zone <payload>.<sig>` where payload is base64url of JSON
// {key, aud, method, path, iat, exp, nonce} and sig the ed25519 signature (base64url) of
// a domain tag + payload. A token is scoped: it is for one node (`aud`, a node id, or
// "*" for any node of the grid), one method, and a URL path prefix; it lives at most 60 s
// (exp - iat), and its random nonce is remembered by the node until it expires, so it is
// accepted once per node. One token per request, then.
// Read tokens (config `readTokens`) are signed by a trusted key. Owner tokens (the grid
// routes) have the same shape under another domain tag, so that neither kind can be
// replayed as the other: the key that signs one is the owner it speaks for, and no trust
// policy is consulted.
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ZoneError } from './errors.ts';
import { parsePublicKey, verifyEd25519, type SigningKeyPair } from './ed25519.ts';
import { ReplayMemory } from './replay-memory.ts';

/** The audience of a token any node of the grid accepts (once each). */
export const GRID_AUDIENCE = '*';
/** Longest lifetime (exp - iat) a node accepts. */
export const MAX_TOKEN_LIFETIME_SECONDS = 60;
/**
 * How far ahead of the node's clock a token may have been issued: clients' clocks (edge
 * devices without NTP, laptops) drift by seconds. A client clock behind the node's is
 * covered by the lifetime itself (up to DEFAULT_TOKEN_TTL_SECONDS behind).
 */
export const CLOCK_SKEW_SECONDS = 30;
/** What clients sign: long enough for a request's transit and a clock somewhat behind. */
export const DEFAULT_TOKEN_TTL_SECONDS = 30;
/** Unexpired tokens a node remembers at most (a few MiB); past it new tokens get 429. */
export const DEFAULT_REPLAY_CAPACITY = 50_000;
/** Longest path a client scopes a token to: a longer path is scoped by its prefix up to a `/`. */
const MAX_SCOPE_PATH = 1024;

/** A kind of token: its domain tag, its name in refusals, and what a request without one is told. */
interface TokenKind { tag: string; name: string; missing: string }
const READ: TokenKind = { tag: 'zone-read-token-v1\n', name: 'read', missing: 'this node requires a read token (Authorization: Zone ...)' };
const OWNER: TokenKind = { tag: 'zone-owner-token-v1\n', name: 'owner', missing: 'this route requires an owner token (Authorization: Zone ...)' };

export interface ReadTokenOptions {
  /** `ed25519:BASE64` keys whose tokens are accepted. */
  keys: string[];
  /** Longest accepted lifetime (exp - iat) of a token (default and most: 60 s). */
  maxTtlSeconds?: number;
}

/** What a token allows. */
export interface TokenScope {
  /** The node id it is for, or GRID_AUDIENCE. */
  aud: string;
  /** The HTTP method, upper case. */
  method: string;
  /** A URL path (without query) or a prefix of it ending at a segment boundary. */
  path: string;
}

const Claims = Type.Object({
  key: Type.String({ maxLength: 64 }),
  aud: Type.String({ pattern: '^([a-z0-9]{1,64}|\\*)$' }),
  method: Type.String({ pattern: '^[A-Z]{1,16}$' }),
  path: Type.String({ pattern: '^/', maxLength: 2 * MAX_SCOPE_PATH }),
  iat: Type.Integer(),
  exp: Type.Integer(),
  nonce: Type.String({ pattern: '^[A-Za-z0-9_-]{22,64}$' }),
});
type Claims = Static<typeof Claims>;

const message = (payload: string, tag: string) => Buffer.from(tag + payload, 'utf8');

function makeToken(tag: string, pair: SigningKeyPair, scope: TokenScope, ttlSeconds: number, now: number): string {
  const iat = Math.floor(now / 1000);
  const claims: Claims = { key: pair.publicKey, aud: scope.aud, method: scope.method, path: scope.path, iat, exp: iat + ttlSeconds, nonce: randomBytes(16).toString('base64url') };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = Buffer.from(nacl.sign.detached(message(payload, tag), pair.secretKey)).toString('base64url');
  return `Zone ${payload}.${sig}`;
}

/** The Authorization header value of a read token signed by `pair` for one request (`now` in ms). */
export function makeReadToken(pair: SigningKeyPair, scope: TokenScope, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  return makeToken(READ.tag, pair, scope, ttlSeconds, now);
}

/** The Authorization header value that makes `pair`'s public key the owner of one grid call. */
export function makeOwnerToken(pair: SigningKeyPair, scope: TokenScope, ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS, now = Date.now()): string {
  return makeToken(OWNER.tag, pair, scope, ttlSeconds, now);
}

/** The path a client scopes a token to for `url` (a path with an optional query): the path, or its prefix up to a `/` when long. */
export function scopePath(url: string): string {
  const path = url.split('?', 1)[0]!;
  if (path.length <= MAX_SCOPE_PATH) return path;
  const cut = path.lastIndexOf('/', MAX_SCOPE_PATH);
  return cut > 0 ? path.slice(0, cut) : '/';
}

/** `prefix` allows `path`: equal, or `path` goes on below it (`/a` allows `/a/b`, not `/ab`). */
function allows(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
}

/** What a request asks of its token. */
export interface TokenRequest {
  method: string;
  /** The URL path (a query is ignored). */
  path: string;
  /** The node it acts on, when not this one (a restart forwarded to another node). */
  aud?: string;
}

/**
 * One node's check of tokens: signature, lifetime, clock, scope, and the memory of the
 * nonces it accepted (one per node, shared by the API and the restarts other nodes ask
 * for, so that a token is accepted once whichever way it comes in).
 */
export class TokenChecker {
  private readonly memory: ReplayMemory;
  private readonly clock: () => number;

  constructor(readonly node: string, options: { replayCapacity?: number; clock?: () => number } = {}) {
    this.memory = new ReplayMemory(options.replayCapacity ?? DEFAULT_REPLAY_CAPACITY);
    this.clock = options.clock ?? Date.now;
  }

  /** The owner (`ed25519:BASE64`) a valid owner token for `request` speaks for; throws ZoneError SIGNATURE (401) or TOO_MANY (429). */
  checkOwner(header: string | undefined, request: TokenRequest): string {
    return this.check(header, OWNER, request, () => true, MAX_TOKEN_LIFETIME_SECONDS);
  }

  /** Throws ZoneError SIGNATURE (401) or TOO_MANY (429) unless `header` is a valid read token of a trusted key for `request`. */
  checkRead(header: string | undefined, request: TokenRequest, options: ReadTokenOptions): void {
    this.check(header, READ, request, (key) => options.keys.includes(key), Math.min(options.maxTtlSeconds ?? MAX_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_LIFETIME_SECONDS));
  }

  private check(header: string | undefined, kind: TokenKind, request: TokenRequest, trusted: (key: string) => boolean, maxLifetime: number): string {
    // Reasons never quote the token: it stays out of replies and logs.
    const refuse = (reason: string) => new ZoneError('SIGNATURE', `${kind.name} token refused: ${reason}`, '/headers/authorization');
    const m = /^Zone ([A-Za-z0-9_-]{1,4096})\.([A-Za-z0-9_-]{86})$/.exec(header ?? '');
    if (!m) throw refuse(header ? 'expected "Zone PAYLOAD.SIG"' : kind.missing);
    const [, payload, sig] = m as unknown as [string, string, string];
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw refuse('payload is not JSON');
    }
    if (!Value.Check(Claims, claims)) {
      const first = Value.Errors(Claims, claims).First();
      throw refuse(`payload ${first?.path || '/'}: ${first?.message ?? 'invalid'} (a token is {key, aud, method, path, iat, exp, nonce})`);
    }
    if (!trusted(claims.key)) throw refuse('not signed by a trusted key');
    let key: Uint8Array;
    try {
      key = parsePublicKey(claims.key);
    } catch {
      throw refuse('key is not ed25519:BASE64');
    }
    if (!verifyEd25519(message(payload, kind.tag), Buffer.from(sig, 'base64url'), key)) throw refuse('signature does not verify');

    const now = this.clock() / 1000;
    const lifetime = claims.exp - claims.iat;
    if (lifetime <= 0) throw refuse('expires before it is issued');
    if (lifetime > maxLifetime) throw refuse(`lives ${lifetime} s, longer than the ${maxLifetime} s this node accepts`);
    if (claims.iat > now + CLOCK_SKEW_SECONDS) throw refuse(`issued ${Math.round(claims.iat - now)} s ahead of this node's clock (${CLOCK_SKEW_SECONDS} s accepted): check the client's clock`);
    if (claims.exp <= now) throw refuse(`expired ${Math.round(now - claims.exp)} s ago`);

    const aud = request.aud ?? this.node;
    if (claims.aud !== GRID_AUDIENCE && claims.aud !== aud) throw refuse(`made for node ${claims.aud}, not ${aud}`);
    const path = request.path.split('?', 1)[0]!;
    if (claims.method !== request.method) throw refuse(`allows ${claims.method}, not ${request.method}`);
    if (!allows(claims.path, path)) throw refuse(`allows ${claims.path}, not ${path}`);
    if (!this.memory.remember(claims.nonce, claims.exp, now)) throw refuse('already used (a token is accepted once: make one per request)');
    return claims.key;
  }
}
