// The grid routes against a real appliance with its pseudokernel (a real nats-server):
// an owner's files round trip byte-exact, its process table shows its workloads, and
// nobody else's token reaches them.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { generateSigningKeyPair } from '../../blueprints/keys.ts';
import { makeOwnerToken, makeReadToken } from '../../api/read-token.ts';
import { gridPath } from '../../api/routes/grid.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, startNode } from './node.ts';
import { StubAppliance } from './stub-appliance.ts';
import { buildServer } from '../../api/server.ts';

t.test('gridPath takes the wildcard as an absolute path and refuses . and .. segments', async (t) => {
  t.equal(gridPath(''), '/');
  t.equal(gridPath('a/b.txt'), '/a/b.txt');
  t.equal(gridPath('a/'), '/a');
  for (const bad of ['a//b', '../x', 'a/./b', '/a']) t.throws(() => gridPath(bad), { code: 'INVALID', field: '/params/path' }, bad);
});

t.test('put, ls, cat and rm round trip byte-exact for the owner; other tokens are refused', async (t) => {
  const started = Date.now();
  const n = await startNode(t, {}, { pseudokernel: true });
  t.equal(n.appliance.pseudokernel?.available, true, 'nats-server started');
  t.comment(`node with pseudokernel up in ${Date.now() - started} ms`);
  const auth = { authorization: makeOwnerToken(n.operator) };
  const fs = `${n.url}/v1/grid/fs`;
  const bytes = randomBytes(3 * 2 ** 20 + 17);

  const t0 = Date.now();
  const put = await fetch(`${fs}/data.bin`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes });
  t.equal(put.status, 204, await put.text());
  t.comment(`PUT 3 MiB in ${Date.now() - t0} ms`);

  const ls = await call(`${fs}/`, { headers: auth });
  t.equal(ls.status, 200, ls.text);
  t.match(ls.json, { path: '/', entries: [{ name: 'data.bin', type: 'file', size: bytes.length, mtime: /^\d{4}-/ }] });

  const t1 = Date.now();
  const cat = await fetch(`${fs}/data.bin`, { headers: auth });
  t.equal(cat.status, 200);
  t.equal(cat.headers.get('content-type'), 'application/octet-stream');
  t.ok(Buffer.from(await cat.arrayBuffer()).equals(bytes), 'the bytes read are the bytes written');
  t.comment(`GET 3 MiB in ${Date.now() - t1} ms`);

  // Another owner, a read token of the node's own operator, no token: none reaches the file.
  const other = { authorization: makeOwnerToken(generateSigningKeyPair()) };
  t.match(await call(`${fs}/data.bin`, { headers: other }), { status: 404, json: { error: 'NOT_FOUND', field: '/params/path' } }, "another owner's grid has no such file");
  t.match(await call(`${fs}/`, { headers: other }), { status: 200, json: { entries: [] } });
  t.match(await call(`${fs}/data.bin`), { status: 401, json: { error: 'SIGNATURE', message: /owner token/, field: '/headers/authorization' } });
  t.match(await call(`${fs}/data.bin`, { headers: { authorization: makeReadToken(n.operator) } }), { status: 401, json: { error: 'SIGNATURE', message: /signature does not verify/ } }, 'a read token is not an owner token');
  t.match(await call(`${fs}/data.bin`, { method: 'DELETE', headers: other }), { status: 404 });
  t.match(await call(`${n.url}/v1/grid/proc`), { status: 401 });

  t.match(await call(`${fs}/no/such`, { headers: auth }), { status: 404, json: { message: /\/no\/such/ } });
  t.match(await call(`${fs}/data.bin/x`, { method: 'PUT', headers: auth, type: 'application/octet-stream', text: 'x' }), { status: 409, json: { error: 'CONFLICT', message: /data\.bin\/x: ENOTDIR/ } });
  t.match(await call(`${fs}/a//b`, { headers: auth }), { status: 400, json: { field: '/params/path' } });
  t.match(await call(`${fs}/x.txt`, { method: 'PUT', headers: auth, type: 'application/json', text: '{}' }), { status: 400, json: { field: '/headers/content-type' } });

  t.equal((await fetch(`${fs}/dir`, { method: 'POST', headers: auth })).status, 204, 'mkdir');
  t.match(await call(`${fs}/dir`, { method: 'POST', headers: auth }), { status: 409, json: { error: 'CONFLICT', message: /\/dir: EEXIST/ } });
  t.equal((await fetch(`${fs}/dir/inner.txt`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: 'inner' })).status, 204);
  t.match(await call(`${fs}/dir`, { headers: auth }), { status: 200, json: { path: '/dir', entries: [{ name: 'inner.txt', type: 'file', size: 5 }] } });
  t.match(await call(`${fs}/dir`, { method: 'DELETE', headers: auth }), { status: 409, json: { error: 'CONFLICT', message: /\/dir: ENOTEMPTY/ } });
  t.equal((await fetch(`${fs}/dir/inner.txt`, { method: 'DELETE', headers: auth })).status, 204);
  t.equal((await fetch(`${fs}/dir`, { method: 'DELETE', headers: auth })).status, 204, 'an empty directory is removed');
  t.equal((await fetch(`${fs}/data.bin`, { method: 'DELETE', headers: auth })).status, 204);
  t.match(await call(`${fs}/data.bin`, { headers: auth }), { status: 404 });
  t.match(await call(`${fs}/`, { headers: auth }), { status: 200, json: { entries: [] } });
});

t.test("the process table lists the owner's workloads, and only them", async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  t.equal((await call(`${n.url}/v1/blueprints/procs`, { method: 'PUT', body: n.sign({ name: 'procs', version: 1, workloads: [box('a'), box('b')] }) })).status, 202);
  const auth = { authorization: makeOwnerToken(n.operator) };
  const t0 = Date.now();
  const rows = await waitFor(async () => {
    const got = await call(`${n.url}/v1/grid/proc`, { headers: auth });
    const running = (got.json?.workloads as { state: string }[] | undefined)?.filter((w) => w.state === 'running');
    return running?.length === 2 && got.json.workloads;
  }, { timeoutMs: 15_000, what: 'a and b running in the process table' });
  t.comment(`both rows running ${Date.now() - t0} ms after the submit`);
  t.match(rows, [
    { node: n.appliance.identity.id, blueprint: 'procs', workload: 'a', kind: 'container', state: 'running', restarts: 0, since: /^\d{4}-/ },
    { workload: 'b' },
  ]);
  t.match(await call(`${n.url}/v1/grid/proc`, { headers: { authorization: makeOwnerToken(generateSigningKeyPair()) } }), { status: 200, json: { workloads: [] } });
});

t.test('without a pseudokernel the grid routes answer 503 with the reason', async (t) => {
  const server = await buildServer(new StubAppliance());
  t.teardown(() => server.close());
  const auth = { authorization: makeOwnerToken(generateSigningKeyPair()) };
  for (const url of ['/v1/grid/proc', '/v1/grid/fs/']) {
    const res = await server.inject({ url, headers: auth });
    t.equal(res.statusCode, 503, url);
    t.match(res.json(), { error: 'UNAVAILABLE', message: /pseudokernel/ });
  }
});

t.test('grid routes take owner tokens even when the node protects reads', async (t) => {
  const n = await startNode(t, { readToken: { keys: [generateSigningKeyPair().publicKey] } }, { pseudokernel: true });
  t.match(await call(`${n.url}/v1/grid/fs/`, { headers: { authorization: makeOwnerToken(n.operator) } }), { status: 200, json: { entries: [] } });
});
