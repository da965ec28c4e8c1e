// Tokens against one node's checker, on an injected clock: each refusal says why, a
// token is accepted once, a client clock ahead by a few seconds still works, and the
// memory of accepted tokens refuses new ones (429) at its cap instead of growing.
import t from 'tap';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import {
  CLOCK_SKEW_SECONDS, GRID_AUDIENCE, MAX_TOKEN_LIFETIME_SECONDS, TokenChecker, makeOwnerToken, makeReadToken, scopePath,
} from '../../lib/tokens.ts';

const T0 = Date.parse('2026-11-29T18:00:00Z');
const owner = generateSigningKeyPair();
const request = { method: 'GET', path: '/v1/grid/fs/notes/a.txt' };
const scope = { aud: 'nodea', ...request };

/** A checker for node `nodea` whose clock is `now.ms`. */
function checker(replayCapacity?: number) {
  const now = { ms: T0 };
  return { now, tokens: new TokenChecker('nodea', { clock: () => now.ms, ...(replayCapacity ? { replayCapacity } : {}) }) };
}

const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return err;
  }
  return null;
};

t.test('a token for this node, method and path is accepted once: the owner is its key', async (t) => {
  const { tokens } = checker();
  const token = makeOwnerToken(owner, scope, 30, T0);
  t.equal(tokens.checkOwner(token, request), owner.publicKey);
  t.match(refusal(() => tokens.checkOwner(token, request)), { code: 'SIGNATURE', field: '/headers/authorization', message: 'owner token refused: already used (a token is accepted once: make one per request)' });
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0), request), owner.publicKey, 'a fresh one is accepted');
});

t.test('each refusal names its reason', async (t) => {
  const { tokens } = checker();
  const cases: [string, string | undefined, typeof request & { aud?: string }, RegExp][] = [
    ['no token', undefined, request, /requires an owner token/],
    ['not the shape', 'Bearer abc', request, /expected "Zone PAYLOAD\.SIG"/],
    ['another node', makeOwnerToken(owner, { ...scope, aud: 'nodeb' }, 30, T0), request, /made for node nodeb, not nodea/],
    ['another method', makeOwnerToken(owner, { ...scope, method: 'DELETE' }, 30, T0), request, /allows DELETE, not GET/],
    ['another path', makeOwnerToken(owner, { ...scope, path: '/v1/grid/fs/notes/b.txt' }, 30, T0), request, /allows \/v1\/grid\/fs\/notes\/b\.txt, not \/v1\/grid\/fs\/notes\/a\.txt/],
    ['a path that only shares a prefix of characters', makeOwnerToken(owner, { ...scope, path: '/v1/grid/fs/notes/a' }, 30, T0), request, /allows \/v1\/grid\/fs\/notes\/a, not/],
    ['expired', makeOwnerToken(owner, scope, 30, T0 - 31_000), request, /expired 1 s ago/],
    ['living longer than 60 s', makeOwnerToken(owner, scope, MAX_TOKEN_LIFETIME_SECONDS + 1, T0), request, /lives 61 s, longer than the 60 s this node accepts/],
    ['issued far ahead of the node clock', makeOwnerToken(owner, scope, 30, T0 + (CLOCK_SKEW_SECONDS + 5) * 1000), request, /issued 35 s ahead of this node's clock \(30 s accepted\)/],
    ['a read token', makeReadToken(owner, scope, 30, T0), request, /signature does not verify/],
    ['a restart passed on by another node, made for that node', makeOwnerToken(owner, { aud: 'nodeb', method: 'POST', path: '/v1/grid/proc/nodea/bp/w/restart' }, 30, T0),
      { method: 'POST', path: '/v1/grid/proc/nodea/bp/w/restart' }, /made for node nodeb, not nodea/],
  ];
  for (const [what, header, req, message] of cases) {
    t.match(refusal(() => tokens.checkOwner(header, req)), { code: 'SIGNATURE', field: '/headers/authorization', message }, what);
  }
  const payload = Buffer.from(JSON.stringify({ key: owner.publicKey, exp: T0 / 1000 + 30 })).toString('base64url');
  t.match(refusal(() => tokens.checkOwner(`Zone ${payload}.${'A'.repeat(86)}`, request)), { message: /payload \/aud: .*\{key, aud, method, path, iat, exp, nonce\}/ }, 'an unscoped (older) token');
});

t.test('refusals never quote the token', async (t) => {
  const { tokens } = checker();
  const token = makeOwnerToken(owner, { ...scope, aud: 'nodeb' }, 30, T0);
  const err = refusal(() => tokens.checkOwner(token, request)) as Error;
  t.notOk(err.message.includes(token.slice(5, 40)), 'no part of the payload');
  t.notOk(err.message.includes(token.slice(-40)), 'no part of the signature');
});

t.test('the grid audience, a path prefix, a query', async (t) => {
  const { tokens } = checker();
  t.equal(tokens.checkOwner(makeOwnerToken(owner, { ...scope, aud: GRID_AUDIENCE }, 30, T0), request), owner.publicKey, 'a token for the grid');
  t.equal(tokens.checkOwner(makeOwnerToken(owner, { ...scope, path: '/v1/grid/fs/notes' }, 30, T0), request), owner.publicKey, 'a directory prefix allows what is below');
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0), { ...request, path: `${request.path}?x=1` }), owner.publicKey, 'the query is not part of the path');
  t.equal(tokens.checkOwner(makeOwnerToken(owner, { aud: 'nodeb', method: 'POST', path: '/v1/grid/proc/nodeb/bp/w/restart' }, 30, T0),
    { method: 'POST', path: '/v1/grid/proc/nodeb/bp/w/restart', aud: 'nodeb' }), owner.publicKey, 'a restart of node b asked here takes a token for node b');
});

t.test('a client clock a few seconds ahead (or behind) of the node still works; the tolerance is 30 s ahead', async (t) => {
  const { tokens, now } = checker();
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0 + 5_000), request), owner.publicKey, '5 s ahead');
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0 + CLOCK_SKEW_SECONDS * 1000), request), owner.publicKey, '30 s ahead');
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0 - 20_000), request), owner.publicKey, '20 s behind');
  // A token from a clock 30 s ahead lives until 60 s after the node's now: it is remembered that long.
  const ahead = makeOwnerToken(owner, scope, 30, T0 + 30_000);
  t.equal(tokens.checkOwner(ahead, request), owner.publicKey);
  now.ms = T0 + 59_000;
  t.match(refusal(() => tokens.checkOwner(ahead, request)), { message: /already used/ }, 'still remembered before its expiry');
  now.ms = T0 + 60_000;
  t.match(refusal(() => tokens.checkOwner(ahead, request)), { message: /expired/ }, 'refused as expired after');
});

t.test('read tokens: a trusted key, their own lifetime limit, the same scope and memory', async (t) => {
  const { tokens } = checker();
  const options = { keys: [owner.publicKey], maxTtlSeconds: 20 };
  t.doesNotThrow(() => tokens.checkRead(makeReadToken(owner, scope, 20, T0), request, options));
  t.match(refusal(() => tokens.checkRead(makeReadToken(owner, scope, 21, T0), request, options)), { message: /read token refused: lives 21 s, longer than the 20 s/ });
  t.match(refusal(() => tokens.checkRead(makeReadToken(owner, scope, 61, T0), request, { keys: [owner.publicKey], maxTtlSeconds: 3600 })), { message: /longer than the 60 s/ }, 'never more than 60 s');
  t.match(refusal(() => tokens.checkRead(makeReadToken(generateSigningKeyPair(), scope, 20, T0), request, options)), { message: /not signed by a trusted key/ });
  t.match(refusal(() => tokens.checkRead(makeReadToken(owner, { ...scope, method: 'POST' }, 20, T0), request, options)), { message: /allows POST, not GET/ });
});

t.test('at its cap the memory refuses new tokens with TOO_MANY, and takes them again once old ones expire', async (t) => {
  const { tokens, now } = checker(3);
  for (let i = 0; i < 3; i++) tokens.checkOwner(makeOwnerToken(owner, scope, 10 + i, T0), request);
  t.match(refusal(() => tokens.checkOwner(makeOwnerToken(owner, scope, 30, T0), request)), { code: 'TOO_MANY', message: /remembers 3 unexpired tokens already; retry/ });
  now.ms = T0 + 10_000;
  t.equal(tokens.checkOwner(makeOwnerToken(owner, scope, 30, now.ms), request), owner.publicKey, 'the first one expired: room for one');
  t.match(refusal(() => tokens.checkOwner(makeOwnerToken(owner, scope, 30, now.ms), request)), { code: 'TOO_MANY' });
  const replay = makeOwnerToken(owner, scope, 30, now.ms);
  now.ms = T0 + 12_000;
  t.equal(tokens.checkOwner(replay, request), owner.publicKey);
  t.match(refusal(() => tokens.checkOwner(replay, request)), { code: 'SIGNATURE', message: /already used/ }, 'a replay at the cap is still a replay');
});

t.test('scopePath: the path without its query; a long one cut at a /', async (t) => {
  t.equal(scopePath('/v1/events?follow=true'), '/v1/events');
  const long = `/v1/grid/fs/${'a'.repeat(1000)}/${'b'.repeat(100)}`;
  t.equal(scopePath(long), `/v1/grid/fs/${'a'.repeat(1000)}`);
});
