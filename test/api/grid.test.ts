// The grid routes against a real appliance with its pseudokernel (a real nats-server):
// an owner's files round trip byte-exact, its process table shows its workloads, and
// nobody else's token reaches them.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { GRID_AUDIENCE, TokenChecker, makeOwnerToken, makeReadToken } from '../../lib/tokens.ts';
import { requestRestart, restartPath } from '../../appliance/pseudokernel/proc/node-control.ts';
import { gridPath } from '../../api/routes/grid.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, ownerCall, ownerToken, startNode } from './node.ts';
import { StubAppliance } from './stub-appliance.ts';
import { buildServer } from '../../api/server.ts';
import { headers } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { pipeIdentity } from '../../blueprints/pipes.ts';
import { PIPE_HEADERS } from '../../appliance/pseudokernel/pipes/ends.ts';
import { workloadId } from '../../drivers/names.ts';
import { signBlueprint } from '../../blueprints/sign.ts';

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
  const node = n.appliance.identity.id;
  const token = (method: string, url: string) => ownerToken(n.operator, node, method, url);
  const owner = ownerCall(n.operator, node);
  const fs = `${n.url}/v1/grid/fs`;
  const bytes = randomBytes(3 * 2 ** 20 + 17);

  const t0 = Date.now();
  const put = await fetch(`${fs}/data.bin`, { method: 'PUT', headers: { ...token('PUT', `${fs}/data.bin`), 'content-type': 'application/octet-stream' }, body: bytes });
  t.equal(put.status, 204, await put.text());
  t.comment(`PUT 3 MiB in ${Date.now() - t0} ms`);

  const ls = await owner(`${fs}/`);
  t.equal(ls.status, 200, ls.text);
  t.match(ls.json, { path: '/', entries: [{ name: 'data.bin', type: 'file', size: bytes.length, mtime: /^\d{4}-/ }] });

  const t1 = Date.now();
  const cat = await fetch(`${fs}/data.bin`, { headers: token('GET', `${fs}/data.bin`) });
  t.equal(cat.status, 200);
  t.equal(cat.headers.get('content-type'), 'application/octet-stream');
  t.ok(Buffer.from(await cat.arrayBuffer()).equals(bytes), 'the bytes read are the bytes written');
  t.comment(`GET 3 MiB in ${Date.now() - t1} ms`);

  // Another owner, a read token of the node's own operator, no token: none reaches the file.
  const other = ownerCall(generateSigningKeyPair(), node);
  t.match(await other(`${fs}/data.bin`), { status: 404, json: { error: 'NOT_FOUND', field: '/params/path' } }, "another owner's grid has no such file");
  t.match(await other(`${fs}/`), { status: 200, json: { entries: [] } });
  t.match(await call(`${fs}/data.bin`), { status: 401, json: { error: 'SIGNATURE', message: /owner token/, field: '/headers/authorization' } });
  t.match(await call(`${fs}/data.bin`, { headers: { authorization: makeReadToken(n.operator, { aud: node, method: 'GET', path: '/v1/grid/fs/data.bin' }) } }), { status: 401, json: { error: 'SIGNATURE', message: /signature does not verify/ } }, 'a read token is not an owner token');
  t.match(await other(`${fs}/data.bin`, { method: 'DELETE' }), { status: 404 });
  t.match(await call(`${n.url}/v1/grid/proc`), { status: 401 });
  t.match(await call(`${fs}/x.txt`, { method: 'PUT', type: 'text/plain', text: 'x' }), { status: 401, json: { error: 'SIGNATURE' } }, 'the token is checked before the body is looked at');

  t.match(await owner(`${fs}/no/such`), { status: 404, json: { message: /\/no\/such/ } });
  t.match(await owner(`${fs}/data.bin/x`, { method: 'PUT', type: 'application/octet-stream', text: 'x' }), { status: 409, json: { error: 'CONFLICT', message: /data\.bin\/x: ENOTDIR/ } });
  t.match(await owner(`${fs}/a//b`), { status: 400, json: { field: '/params/path' } });
  t.match(await owner(`${fs}/x.txt`, { method: 'PUT', type: 'application/json', text: '{}' }), { status: 400, json: { field: '/headers/content-type' } });

  t.equal((await fetch(`${fs}/dir`, { method: 'POST', headers: token('POST', `${fs}/dir`) })).status, 204, 'mkdir');
  t.match(await owner(`${fs}/dir`, { method: 'POST' }), { status: 409, json: { error: 'CONFLICT', message: /\/dir: EEXIST/ } });
  t.equal((await fetch(`${fs}/dir/inner.txt`, { method: 'PUT', headers: { ...token('PUT', `${fs}/dir/inner.txt`), 'content-type': 'application/octet-stream' }, body: 'inner' })).status, 204);
  t.match(await owner(`${fs}/dir`), { status: 200, json: { path: '/dir', entries: [{ name: 'inner.txt', type: 'file', size: 5 }] } });
  t.match(await owner(`${fs}/dir`, { method: 'DELETE' }), { status: 409, json: { error: 'CONFLICT', message: /\/dir: ENOTEMPTY/ } });
  t.equal((await fetch(`${fs}/dir/inner.txt`, { method: 'DELETE', headers: token('DELETE', `${fs}/dir/inner.txt`) })).status, 204);
  t.equal((await fetch(`${fs}/dir`, { method: 'DELETE', headers: token('DELETE', `${fs}/dir`) })).status, 204, 'an empty directory is removed');
  t.equal((await fetch(`${fs}/data.bin`, { method: 'DELETE', headers: token('DELETE', `${fs}/data.bin`) })).status, 204);
  t.match(await owner(`${fs}/data.bin`), { status: 404 });
  t.match(await owner(`${fs}/`), { status: 200, json: { entries: [] } });
});

t.test('owner tokens are scoped: a replayed one, one for another node, route or method, an expired one, one living over 60 s are each refused with the reason; a clock a few seconds ahead works; no token is logged', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  const node = n.appliance.identity.id;
  const url = `${n.url}/v1/grid/fs/`;
  const scope = { aud: node, method: 'GET', path: '/v1/grid/fs/' };
  const get = (authorization: string) => call(url, { headers: { authorization } });
  const refused = (message: RegExp) => ({ status: 401, json: { error: 'SIGNATURE', field: '/headers/authorization', message } });
  const used: string[] = [];
  const token = (...args: Parameters<typeof makeOwnerToken>) => {
    const made = makeOwnerToken(...args);
    used.push(made);
    return made;
  };

  const once = token(n.operator, scope);
  t.match(await get(once), { status: 200, json: { entries: [] } });
  t.match(await get(once), refused(/owner token refused: already used/), 'replayed');
  t.match(await get(token(n.operator, { ...scope, aud: 'othernode' })), refused(new RegExp(`made for node othernode, not ${node}`)), 'for another node');
  t.match(await get(token(n.operator, { ...scope, path: '/v1/grid/proc' })), refused(/allows \/v1\/grid\/proc, not \/v1\/grid\/fs\//), 'for another route');
  t.match(await get(token(n.operator, { ...scope, method: 'DELETE' })), refused(/allows DELETE, not GET/), 'for another method');
  t.match(await call(`${n.url}/v1/grid/fs/secret.txt`, { method: 'PUT', type: 'application/octet-stream', text: 'x', headers: { authorization: token(n.operator, { aud: node, method: 'PUT', path: '/v1/grid/fs/secret' }) } }),
    refused(/allows \/v1\/grid\/fs\/secret, not \/v1\/grid\/fs\/secret\.txt/), 'a token for a path is not one for another that only begins like it');
  t.match(await get(token(n.operator, scope, 30, Date.now() - 40_000)), refused(/expired \d+ s ago/), 'expired');
  t.match(await get(token(n.operator, scope, 61)), refused(/lives 61 s, longer than the 60 s/), 'living longer than 60 s');
  t.match(await get(token(n.operator, scope, 30, Date.now() + 5_000)), { status: 200 }, 'from a clock 5 s ahead');
  t.match(await get(token(n.operator, scope, 30, Date.now() + 90_000)), refused(/ahead of this node's clock/), 'from a clock far ahead');
  const log = n.log();
  t.ok(log.length > 0, 'the node logged');
  for (const made of used) t.notOk(log.includes(made.slice(5, 60)) || log.includes(made.slice(-60)), 'no token in the log');
});

t.test('a process row carries the workload\'s volumes', async (t) => {
  const row = { node: 'n1', blueprint: 'notes', workload: 'app', kind: 'container', state: 'running', restarts: 0, since: '2026-01-01T00:00:00.000Z' };
  const volumes = [{ name: 'db', kind: 'filesystem', sizeBytes: 67108864, usedBytes: 15360, target: '/data', readOnly: false }];
  const stub = new StubAppliance(new TokenChecker('stub'));
  stub.gridProc = async () => [{ ...row, volumes }, { ...row, workload: 'web' }];
  const server = await buildServer(stub);
  t.teardown(() => server.close());
  const key = generateSigningKeyPair();
  const res = await server.inject({ url: '/v1/grid/proc', headers: { authorization: makeOwnerToken(key, { aud: 'stub', method: 'GET', path: '/v1/grid/proc' }) } });
  t.same(res.json(), { workloads: [{ ...row, volumes }, { ...row, workload: 'web' }] });
});

t.test('the memory of accepted tokens refuses new ones with 429 at its cap', async (t) => {
  const server = await buildServer(new StubAppliance(new TokenChecker('stub', { replayCapacity: 2 })));
  t.teardown(() => server.close());
  const key = generateSigningKeyPair();
  const get = () => server.inject({ url: '/v1/grid/proc', headers: { authorization: makeOwnerToken(key, { aud: 'stub', method: 'GET', path: '/v1/grid/proc' }) } });
  t.equal((await get()).statusCode, 503, 'accepted (then no pseudokernel)');
  t.equal((await get()).statusCode, 503);
  const full = await get();
  t.equal(full.statusCode, 429);
  t.match(full.json(), { error: 'TOO_MANY', message: /remembers 2 unexpired tokens already; retry in a few seconds/, field: '/headers/authorization' });
});

t.test("the process table lists the owner's workloads, and only them", async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  t.equal((await call(`${n.url}/v1/blueprints/procs`, { method: 'PUT', body: n.sign({ name: 'procs', version: 1, workloads: [box('a'), box('b')] }) })).status, 202);
  const owner = ownerCall(n.operator, n.appliance.identity.id);
  const t0 = Date.now();
  const rows = await waitFor(async () => {
    const got = await owner(`${n.url}/v1/grid/proc`);
    const running = (got.json?.workloads as { state: string }[] | undefined)?.filter((w) => w.state === 'running');
    return running?.length === 2 && got.json.workloads;
  }, { timeoutMs: 15_000, what: 'a and b running in the process table' });
  t.comment(`both rows running ${Date.now() - t0} ms after the submit`);
  t.match(rows, [
    { node: n.appliance.identity.id, blueprint: 'procs', workload: 'a', kind: 'container', state: 'running', restarts: 0, since: /^\d{4}-/ },
    { workload: 'b' },
  ]);
  t.match(await ownerCall(generateSigningKeyPair(), n.appliance.identity.id)(`${n.url}/v1/grid/proc`), { status: 200, json: { workloads: [] } });
});

t.test("pipes list the owner's pipes with their lag; restart stops and starts a workload of the owner's, here or on a named node", async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  const node = n.appliance.identity.id;
  const owner = ownerCall(n.operator, node);
  const other = ownerCall(generateSigningKeyPair(), node);
  // The pipe's consumer is on another node: nothing here ever commits what the stream holds.
  t.equal((await call(`${n.url}/v1/blueprints/lagging`, { method: 'PUT', body: n.sign({
    name: 'lagging', version: 1, workloads: [box('src'), box('dst')], pipes: [{ from: 'src.stdout', to: 'othernode/elsewhere/sink.stdin' }],
  }) })).status, 202);
  const from = `${node}/lagging/src.stdout`;
  const to = 'othernode/elsewhere/sink.stdin';
  const pipesNow = async () => (await owner(`${n.url}/v1/grid/pipes`)).json?.pipes as { lagMessages: number; lagBytes: number }[] | undefined;
  t.match(await waitFor(async () => (await pipesNow())?.length === 1 && pipesNow(), { timeoutMs: 30_000, what: "the pipe's stream made by its producer end" }),
    [{ from, to, lagMessages: 0, lagBytes: 0 }]);

  // What a producer publishes: an incarnation's bytes, then its end-of-stream marker.
  const nc = await n.appliance.pseudokernel!.server.connect();
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const pipe = pipeIdentity(n.operator.publicKey, from, to);
  const marks = (offset: number, eof?: string) => {
    const h = headers();
    h.set(PIPE_HEADERS.incarnation, '2026-01-01T00:00:00.000Z');
    h.set(PIPE_HEADERS.offset, String(offset));
    if (eof) h.set(PIPE_HEADERS.eof, eof);
    return h;
  };
  await js.publish(pipe.subject, Buffer.from('x'.repeat(1000)), { headers: marks(0) });
  await js.publish(pipe.subject, new Uint8Array(0), { headers: marks(1000, '0') });
  const [lagging] = (await pipesNow())!;
  t.match(lagging, { from, to, lagMessages: 2 }, 'both messages are still to commit');
  t.ok(lagging!.lagBytes > 1000, 'with what the stream stores of them');
  t.match(await other(`${n.url}/v1/grid/pipes`), { status: 200, json: { pipes: [] } }, "another owner's pipes are not this owner's");

  const dstRow = async () => (await n.appliance.gridProc(n.operator.publicKey)).find((r) => r.workload === 'dst');
  await waitFor(async () => (await dstRow())?.state === 'running', { timeoutMs: 30_000, what: 'dst running' });
  const restart = `${n.url}/v1/grid/proc/${node}/lagging/dst/restart`;
  t.match(await other(restart, { method: 'POST' }), { status: 404, json: { error: 'NOT_FOUND', field: '/params/workload' } }, 'another owner cannot restart it');
  t.match(await call(restart, { method: 'POST' }), { status: 401 });
  const stops = n.driver.calls.stop;
  t.match(await owner(restart, { method: 'POST' }), { status: 202, json: { node, blueprint: 'lagging', workload: 'dst' } });
  const row = await waitFor(async () => { const r = await dstRow(); return r?.restarts === 1 && r.state === 'running' && r; }, { timeoutMs: 30_000, what: 'dst restarted once and running' });
  t.match(row, { node, restarts: 1, state: 'running' });
  t.equal(n.driver.calls.stop, stops + 1, 'the driver stopped it once');
  // What another node passes on over NATS: the owner's token must be made for this node
  // and this restart, and is accepted once (the API's and NATS's tokens share one memory).
  const path = restartPath(node, 'lagging', 'dst');
  const passedOn = (scope: { aud: string; method: string; path: string }) => requestRestart(nc, node, { token: makeOwnerToken(n.operator, scope), blueprint: 'lagging', workload: 'dst' });
  await t.rejects(passedOn({ aud: 'othernode', method: 'POST', path }), { code: 'SIGNATURE', message: new RegExp(`made for node othernode, not ${node}`) }, 'a token made for the node that passes it on');
  await t.rejects(passedOn({ aud: node, method: 'POST', path: restartPath(node, 'lagging', 'src') }), { code: 'SIGNATURE', message: /allows .*\/src\/restart, not .*\/dst\/restart/ }, 'a token for another workload');
  await t.rejects(passedOn({ aud: node, method: 'GET', path: '/v1/grid/proc' }), { code: 'SIGNATURE', message: /allows GET, not POST/ }, 'a token for another route');
  const direct = makeOwnerToken(n.operator, { aud: node, method: 'POST', path });
  t.match(await call(restart, { method: 'POST', headers: { authorization: direct } }), { status: 202 });
  await t.rejects(requestRestart(nc, node, { token: direct, blueprint: 'lagging', workload: 'dst' }), { code: 'SIGNATURE', message: /already used/ }, 'a token used at the API is not accepted again over NATS');
  await waitFor(async () => { const r = await dstRow(); return r?.restarts === 2 && r.state === 'running'; }, { timeoutMs: 30_000, what: 'dst restarted twice and running' });
  await passedOn({ aud: node, method: 'POST', path });
  await waitFor(async () => { const r = await dstRow(); return r?.restarts === 3 && r.state === 'running'; }, { timeoutMs: 30_000, what: 'dst restarted when another node passed the token on' });

  t.match(await owner(`${n.url}/v1/grid/proc/${node}/lagging/nope/restart`, { method: 'POST' }), { status: 404, json: { message: /no workload lagging\/nope/ } });
  // A restart on another node takes a token made for that node (it checks it again).
  t.match(await owner(`${n.url}/v1/grid/proc/othernode/lagging/dst/restart`, { method: 'POST' }), { status: 401, json: { message: new RegExp(`made for node ${node}, not othernode`) } }, 'not one for this node');
  t.match(await ownerCall(n.operator, 'othernode')(`${n.url}/v1/grid/proc/othernode/lagging/dst/restart`, { method: 'POST' }), { status: 404, json: { error: 'NOT_FOUND', message: /node othernode is not on this grid/, field: '/params/node' } });
  t.match(await ownerCall(n.operator, GRID_AUDIENCE)(`${n.url}/v1/grid/proc/No.de/lagging/dst/restart`, { method: 'POST' }), { status: 400, json: { error: 'INVALID' } });
});

t.test("two owners with the same blueprint and workload names: a restart by one, over HTTP or over NATS, touches only that owner's", async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true, operatorOwners: '*' });
  const b = generateSigningKeyPair();
  const node = n.appliance.identity.id;
  const a = n.operator;
  t.equal((await call(`${n.url}/v1/blueprints/same`, { method: 'PUT', body: n.sign({ name: 'same', version: 1, workloads: [box('w')] }) })).status, 202);
  // B's blueprint: counted by the operator's signature (it may act for any owner here), and signed by its owner too.
  const theirs = signBlueprint(n.sign({ name: 'same', version: 1, owner: b.publicKey, workloads: [box('w')] }), b.secretKey);
  t.equal((await call(`${n.url}/v1/blueprints/same`, { method: 'PUT', body: theirs })).status, 202);
  const rowOf = async (owner: string) => (await n.appliance.gridProc(owner)).find((r) => r.blueprint === 'same' && r.workload === 'w');
  await waitFor(async () => (await rowOf(a.publicKey))?.state === 'running' && (await rowOf(b.publicKey))?.state === 'running', { timeoutMs: 30_000, what: 'both owners\' w running' });
  t.not(workloadId(node, a.publicKey, 'same', 'w'), workloadId(node, b.publicKey, 'same', 'w'), 'two engine-side names');

  const stops = n.driver.calls.stop;
  t.match(await call(`${n.url}/v1/grid/proc/${node}/same/w/restart`, { method: 'POST', headers: ownerToken(a, node, 'POST', `${n.url}/v1/grid/proc/${node}/same/w/restart`) }), { status: 202 });
  await waitFor(async () => (await rowOf(a.publicKey))?.restarts === 1 && (await rowOf(a.publicKey))?.state === 'running', { timeoutMs: 30_000, what: "A's w restarted" });
  await n.appliance.reconciler.idle();
  t.match(await rowOf(b.publicKey), { restarts: 0, state: 'running' }, "B's workload of the same names is untouched");
  t.equal(n.driver.calls.stop, stops + 1, 'one stop: A\'s');

  // The path another node's request takes: NATS, with the caller's token inside.
  await n.appliance.pseudokernel!.requestRestart(node, { token: makeOwnerToken(b, { aud: node, method: 'POST', path: restartPath(node, 'same', 'w') }), blueprint: 'same', workload: 'w' });
  await waitFor(async () => (await rowOf(b.publicKey))?.restarts === 1 && (await rowOf(b.publicKey))?.state === 'running', { timeoutMs: 30_000, what: "B's w restarted over NATS" });
  await n.appliance.reconciler.idle();
  t.match(await rowOf(a.publicKey), { restarts: 1 }, "A's workload was not restarted again");
  t.equal(n.driver.calls.stop, stops + 2);
  await t.rejects(n.appliance.pseudokernel!.requestRestart(node, { token: makeOwnerToken(generateSigningKeyPair(), { aud: node, method: 'POST', path: restartPath(node, 'same', 'w') }), blueprint: 'same', workload: 'w' }),
    { code: 'NOT_FOUND' }, 'a third owner finds no such workload');
});

t.test('without a pseudokernel the grid routes answer 503 with the reason', async (t) => {
  const server = await buildServer(new StubAppliance());
  t.teardown(() => server.close());
  const key = generateSigningKeyPair();
  for (const url of ['/v1/grid/proc', '/v1/grid/fs/', '/v1/grid/pipes']) {
    const res = await server.inject({ url, headers: { authorization: makeOwnerToken(key, { aud: 'stub', method: 'GET', path: url }) } });
    t.equal(res.statusCode, 503, url);
    t.match(res.json(), { error: 'UNAVAILABLE', message: /pseudokernel/ });
  }
});

t.test('grid routes take owner tokens even when the node protects reads', async (t) => {
  const n = await startNode(t, { readToken: { keys: [generateSigningKeyPair().publicKey] } }, { pseudokernel: true });
  t.match(await ownerCall(n.operator, n.appliance.identity.id)(`${n.url}/v1/grid/fs/`), { status: 200, json: { entries: [] } });
});
