// PUT /v1/node/release/stored: only a release signer's read token, made for this call (or
// for the upload, whose path it is under), makes the node take a release from the grid's store; the reference is checked before
// the appliance sees it, and its refusals come back as they were made.
import t from 'tap';
import { buildServer } from '../../api/server.ts';
import type { ReleaseAccepted } from '../../appliance/types.ts';
import { ZoneError } from '../../lib/errors.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { makeReadToken } from '../../lib/tokens.ts';
import { StubAppliance } from './stub-appliance.ts';

const signer = generateSigningKeyPair();
const other = generateSigningKeyPair();
const asked: string[] = [];
const accepted: ReleaseAccepted = { version: '0.2.0', digest: `sha256:${'a'.repeat(64)}`, from: '0.1.0', signers: ['operator'], stored: true };
const stub = Object.assign(new StubAppliance(), {
  installRelease: async () => accepted,
  releaseUploaders: () => [signer.publicKey],
  installStoredRelease: async (ref: string) => {
    asked.push(ref);
    if (ref === '9.9.9') throw new ZoneError('NOT_FOUND', 'release 9.9.9 is not in the grid\'s release store', '/release');
    return accepted;
  },
});
const server = await buildServer(stub);
t.teardown(() => server.close());
const put = (body: unknown, key = signer, path = '/v1/node/release/stored') => server.inject({
  method: 'PUT', url: '/v1/node/release/stored', payload: body as object,
  headers: { 'content-type': 'application/json', ...(key ? { authorization: makeReadToken(key, { aud: 'stub', method: 'PUT', path }) } : {}) },
});

t.test('a release signer\'s token takes a stored release; the answer is the appliance\'s', async (t) => {
  const res = await put({ release: '0.2.0' });
  t.equal(res.statusCode, 202);
  t.same(res.json(), accepted);
  t.same(asked.splice(0), ['0.2.0']);
});

t.test('without a release signer\'s token for this call, nothing is asked', async (t) => {
  t.match((await server.inject({ method: 'PUT', url: '/v1/node/release/stored', payload: { release: '0.2.0' } })).json(), { error: 'SIGNATURE' });
  t.match((await put({ release: '0.2.0' }, other)).json(), { error: 'SIGNATURE' }, 'a key that signs no release');
  t.match((await put({ release: '0.2.0' }, signer, '/v1/blueprints')).json(), { error: 'SIGNATURE' }, 'a token made for another call');
  t.same(asked, []);
});

t.test('a reference that is not one is refused before the appliance sees it; its own refusals come back', async (t) => {
  for (const body of [{}, { release: 'x'.repeat(81) }, { release: 'latest' }, { release: 2 }, { release: `sha256:${'A'.repeat(64)}` }, { release: '01.2.3' }]) {
    t.match((await put(body)).json(), { error: 'INVALID' }, JSON.stringify(body));
  }
  t.same(asked, []);
  const res = await put({ release: '9.9.9' });
  t.equal(res.statusCode, 404);
  t.match(res.json(), { error: 'NOT_FOUND', field: '/release' });
});
