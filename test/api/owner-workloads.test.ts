// /v1/grid/blueprints, events, logs and usage (the console's owner routes), against a
// node with the fake driver: each owner token reaches only its own owner's things, even
// with read protection on; a token for another path or a used one is refused.
import t from 'tap';
import { makeOwnerToken } from '../../lib/tokens.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, ownerCall, startNode } from './node.ts';

t.test('an owner sees its blueprints, events, logs and usage here; another owner sees none of them', async (t) => {
  const n = await startNode(t, {}, { exposed: true });
  const node = n.appliance.identity.id;
  await n.appliance.submit(n.sign({ name: 'site', version: 1, workloads: [box('web')] }));
  await waitFor(() => n.appliance.getBlueprint('site')?.workloads[0]?.state === 'running', { timeoutMs: 10_000, what: 'web running' });
  const mine = ownerCall(n.operator, node);
  const theirs = ownerCall(generateSigningKeyPair(), node);

  const listed = await mine(`${n.url}/v1/grid/blueprints`);
  t.equal(listed.status, 200, 'an owner token reads even with read protection on');
  t.same((listed.json.blueprints as Array<{ name: string }>).map((b) => b.name), ['site']);
  t.same((await theirs(`${n.url}/v1/grid/blueprints`)).json, { blueprints: [] });

  const events = (await mine(`${n.url}/v1/grid/events/?follow=false`)).text;
  t.match(events, /"blueprint":"site"/);
  t.match(events, /"to":"running"/);
  t.notMatch((await theirs(`${n.url}/v1/grid/events/?follow=false`)).text, /"blueprint":"site"/, 'another owner\'s stream has none of them');

  t.equal((await mine(`${n.url}/v1/grid/logs/site/web`)).status, 200);
  const refused = await theirs(`${n.url}/v1/grid/logs/site/web`);
  t.equal(refused.status, 404, 'another owner: as if it were not there');
  t.match(refused.json.message, /no workload web in blueprint site/);

  t.same((await theirs(`${n.url}/v1/grid/usage`)).json, { workloads: [] });
  t.equal((await call(`${n.url}/v1/grid/blueprints`)).status, 401, 'no token: 401');
});

t.test('a token for another path, or used twice, is refused', async (t) => {
  const n = await startNode(t);
  const node = n.appliance.identity.id;
  const forProc = makeOwnerToken(n.operator, { aud: node, method: 'GET', path: '/v1/grid/proc' });
  const wrong = await call(`${n.url}/v1/grid/blueprints`, { headers: { authorization: forProc } });
  t.equal(wrong.status, 401);
  t.match(wrong.json.message, /allows \/v1\/grid\/proc, not \/v1\/grid\/blueprints/);
  const once = makeOwnerToken(n.operator, { aud: node, method: 'GET', path: '/v1/grid/blueprints' });
  t.equal((await call(`${n.url}/v1/grid/blueprints`, { headers: { authorization: once } })).status, 200);
  t.match((await call(`${n.url}/v1/grid/blueprints`, { headers: { authorization: once } })).json.message, /already used/);
});

t.test('the console\'s page and its scripts are served, with read protection on, under a same-origin CSP', async (t) => {
  const n = await startNode(t, {}, { exposed: true });
  const redirect = await fetch(`${n.url}/ui`, { redirect: 'manual' });
  t.equal(redirect.status, 301);
  t.equal(redirect.headers.get('location'), '/ui/');
  const index = await call(`${n.url}/ui/`);
  t.equal(index.status, 200);
  t.match(index.text, /<title>Zone console<\/title>/);
  t.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  for (const file of ['app.js', 'vendor/xterm.mjs', 'vendor/addon-fit.mjs', 'vendor/xterm.css', 'vendor/nacl-fast.min.js']) {
    t.equal((await call(`${n.url}/ui/${file}`)).status, 200, file);
  }
  // Encoded, so that fetch does not resolve the dots itself.
  const outside = await call(`${n.url}/ui/%2e%2e/%2e%2e/package.json`);
  t.not(outside.status, 200, `nothing outside the console's folder (${outside.status})`);
  t.notMatch(outside.text, /"name": "zone"/);
});
