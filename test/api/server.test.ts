import t from 'tap';
import { Validator } from '@seriousme/openapi-schema-validator';
import { stringify } from 'yaml';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { buildServer } from '../../api/server.ts';
import { GRID_AUDIENCE, makeReadToken } from '../../lib/tokens.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, startNode } from './node.ts';
import { StubAppliance } from './stub-appliance.ts';

const put = (url: string, name: string, body: unknown) => call(`${url}/v1/blueprints/${name}`, { method: 'PUT', body });

t.test('a signed blueprint is accepted as JSON or YAML, shown with its workloads, and deleted by a tombstone', async (t) => {
  const n = await startNode(t);
  const json = await put(n.url, 'web', n.sign({ name: 'web', version: 1, workloads: [box('a')] }));
  t.equal(json.status, 202);
  t.same(json.json, { name: 'web', owner: n.operator.publicKey, version: 1, deleted: false });
  const yaml = await call(`${n.url}/v1/blueprints/web`, { method: 'PUT', type: 'application/yaml', text: stringify(n.sign({ name: 'web', version: 2, workloads: [box('a'), box('b')] })) });
  t.equal(yaml.status, 202, yaml.text);
  await waitFor(async () => {
    const got = await call(`${n.url}/v1/blueprints/web`);
    return got.json.version === 2 && (got.json.workloads as { state: string }[]).every((w) => w.state === 'running') && got;
  }, { timeoutMs: 10_000, what: 'web v2 running' });
  const list = await call(`${n.url}/v1/blueprints`);
  t.match(list.json, { blueprints: [{ name: 'web', version: 2, workloads: [{ workload: 'a', state: 'running', restarts: 0 }, { workload: 'b' }] }] });
  const tomb = await put(n.url, 'web', n.sign({ name: 'web', version: 3, delete: true }));
  t.match(tomb, { status: 202, json: { deleted: true, version: 3 } });
  await waitFor(async () => (await call(`${n.url}/v1/blueprints/web`)).json.workloads?.toString() === '', { timeoutMs: 10_000, what: 'workloads removed' });
  t.same(n.driver.snapshot(), [], 'nothing left in the engine');
});

t.test('each refusal has its status and a body naming the field or the reason', async (t) => {
  const n = await startNode(t);
  const v1 = n.sign({ name: 'door', version: 1, workloads: [box('a')] });
  t.equal((await put(n.url, 'door', v1)).status, 202);

  const cases: [string, Promise<Awaited<ReturnType<typeof call>>>, number, Record<string, unknown>][] = [
    ['name differs from the path', put(n.url, 'other', n.sign({ name: 'door', version: 2 })), 400, { error: 'INVALID', field: '/name' }],
    ['schema: a workload without image', put(n.url, 'x', n.sign({ name: 'x', version: 1, workloads: [{ name: 'a', kind: 'container' } as never] })), 400, { error: 'INVALID', field: '/workloads/0' }],
    ['bad YAML', call(`${n.url}/v1/blueprints/x`, { method: 'PUT', type: 'text/yaml', text: 'name: [x' }), 400, { error: 'INVALID', message: /YAML/ }],
    ['YAML tags', call(`${n.url}/v1/blueprints/x`, { method: 'PUT', type: 'application/yaml', text: 'name: !!js/function x' }), 400, { error: 'INVALID', message: /tag/ }],
    ['bad JSON', call(`${n.url}/v1/blueprints/x`, { method: 'PUT', text: '{"name": ' }), 400, { error: 'INVALID', message: /JSON/ }],
    ['no body', call(`${n.url}/v1/blueprints/x`, { method: 'PUT' }), 400, { error: 'INVALID', field: '/body' }],
    ['a path name that is not a name', put(n.url, 'Bad_Name', v1), 400, { error: 'INVALID', field: '/params/name' }],
    ['a query value out of range', call(`${n.url}/v1/blueprints/door/workloads/a/logs?tail=-1`), 400, { error: 'INVALID', field: '/querystring/tail' }],
    ['tampered after signing', put(n.url, 'door', { ...v1, version: 2 }), 401, { error: 'SIGNATURE', field: '/signatures/0/sig', message: /does not verify/ }],
    ['unsigned', put(n.url, 'door', { ...v1, version: 2, signatures: [] }), 401, { error: 'SIGNATURE', field: '/signatures' }],
    ['signed by a key the node does not trust', put(n.url, 'door', n.sign({ name: 'door', version: 2 }, generateSigningKeyPair())), 403, { error: 'POLICY', message: /trust policy needs 1/ }],
    ['for another node', put(n.url, 'door', n.sign({ name: 'door', version: 2, node: 'elsewhere' })), 403, { error: 'POLICY', field: '/node' }],
    ['a replay', put(n.url, 'door', v1), 409, { error: 'STALE', field: '/version' }],
    ['expired', put(n.url, 'door', n.sign({ name: 'door', version: 2, expires: '2020-01-01T00:00:00Z' })), 409, { error: 'STALE', field: '/expires' }],
    ['too large', call(`${n.url}/v1/blueprints/x`, { method: 'PUT', text: JSON.stringify({ name: 'x', pad: 'x'.repeat(1024 * 1024) }) }), 413, { error: 'TOO_LARGE' }],
    ['another media type', call(`${n.url}/v1/blueprints/x`, { method: 'PUT', type: 'text/plain', text: 'name: x' }), 415, { error: 'UNSUPPORTED_MEDIA_TYPE' }],
    ['more than the node has', put(n.url, 'big', n.sign({ name: 'big', version: 1, workloads: [box('a', { resources: { memory: '7Gi' } })] })), 422, { error: 'CAPACITY', details: Object }],
    ['an unknown blueprint', call(`${n.url}/v1/blueprints/nothing`), 404, { error: 'NOT_FOUND', field: '/params/name' }],
    ['an unknown workload', call(`${n.url}/v1/blueprints/door/workloads/zzz/logs`), 404, { error: 'NOT_FOUND', field: '/workload' }],
    ['an unknown route', call(`${n.url}/v2/anything`), 404, { error: 'NOT_FOUND', message: 'no route GET /v2/anything' }],
  ];
  for (const [what, pending, status, body] of cases) {
    const res = await pending;
    t.equal(res.status, status, `${what}: ${res.text}`);
    t.match(res.json, body, what);
    t.notMatch(res.text, /\n|at .*\.ts:\d+/, `${what}: one line, no stack`);
  }
  t.equal((await call(`${n.url}/v1/blueprints/door`)).json.version, 1, 'nothing refused changed the node');
});

t.test('the rate limit answers 429 per client', async (t) => {
  const n = await startNode(t, { rateLimit: { max: 3, timeWindowMs: 60_000 } });
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await call(`${n.url}/healthz`)).status);
  t.same(statuses, [200, 200, 200, 429, 429]);
  t.match((await call(`${n.url}/v1/node`)).json, { error: 'RATE_LIMITED', message: /rate limit/ });
});

t.test('an unexpected failure is a 500 without its message; an unreachable engine is a 503', async (t) => {
  const stub = new StubAppliance();
  stub.failWith = new Error('boom: something internal');
  const server = await buildServer(stub);
  t.teardown(() => server.close());
  const res = await server.inject({ url: '/v1/node' });
  t.equal(res.statusCode, 500);
  t.same(res.json(), { error: 'INTERNAL', message: 'internal error; the node log has the details' });
  const n = await startNode(t);
  await put(n.url, 'gone', n.sign({ name: 'gone', version: 1, workloads: [box('a')] }));
  await waitFor(() => n.driver.snapshot().length === 1, { timeoutMs: 5000, what: 'created' });
  n.driver.setUnavailable('docker is down');
  const logs = await call(`${n.url}/v1/blueprints/gone/workloads/a/logs`);
  t.equal(logs.status, 503, logs.text);
  t.match(logs.json, { error: 'UNAVAILABLE' });
  n.driver.setUnavailable(null);
});

t.test('logs are streamed', async (t) => {
  const n = await startNode(t);
  await put(n.url, 'lg', n.sign({ name: 'lg', version: 1, workloads: [box('a')] }));
  await waitFor(() => n.driver.snapshot().length === 1, { timeoutMs: 5000, what: 'created' });
  const res = await call(`${n.url}/v1/blueprints/lg/workloads/a/logs?tail=10`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  t.equal(res.text, 'a running\n');
});

t.test('GET /v1/node lists each driver with its details and, for workload drivers, the capabilities it declares', async (t) => {
  const n = await startNode(t);
  const { status, json } = await call(`${n.url}/v1/node`);
  t.equal(status, 200);
  const drivers = json.drivers as { kind: string; capabilities?: unknown }[];
  t.match(drivers.find((d) => d.kind === 'container'), { available: true, version: 'fake', details: {}, capabilities: { attach: true, console: false, mount: false } });
});

t.test('with read protection, reads need a fresh token of a trusted key, for this node, method and path, once; writes and health do not', async (t) => {
  const reader = generateSigningKeyPair();
  const n = await startNode(t, { readToken: { keys: [reader.publicKey], maxTtlSeconds: 60 } });
  const id = n.appliance.identity.id;
  const scope = { aud: id, method: 'GET', path: '/v1/node' };
  const get = (authorization?: string) => call(`${n.url}/v1/node`, authorization ? { headers: { authorization } } : {});
  t.match(await get(), { status: 401, json: { error: 'SIGNATURE', message: /requires a read token/ } });
  const token = makeReadToken(reader, scope);
  t.match(await get(token), { status: 200, json: { id } });
  t.match(await get(token), { status: 401, json: { message: /read token refused: already used/ } }, 'a token is accepted once');
  t.match(await get(makeReadToken(reader, { ...scope, aud: GRID_AUDIENCE })), { status: 200 }, 'a token for the grid is accepted by any of its nodes');
  t.match(await get(makeReadToken(reader, { ...scope, aud: 'othernode' })), { status: 401, json: { message: new RegExp(`made for node othernode, not ${id}`) } });
  t.match(await get(makeReadToken(reader, { ...scope, path: '/v1/blueprints' })), { status: 401, json: { message: /allows \/v1\/blueprints, not \/v1\/node/ } });
  t.match(await get(makeReadToken(generateSigningKeyPair(), scope)), { status: 401, json: { message: /not signed by a trusted key/ } });
  t.match(await get(makeReadToken(reader, scope, 30, Date.now() - 120_000)), { status: 401, json: { message: /expired/ } });
  t.match(await get(makeReadToken(reader, scope, 3600)), { status: 401, json: { message: /lives 3600 s, longer than the 60 s/ } });
  const forged = makeReadToken(reader, scope).replace(/\.(.)/, (_m, c: string) => `.${c === 'A' ? 'B' : 'A'}`);
  t.match(await get(forged), { status: 401, json: { message: /does not verify/ } });
  t.match(await call(`${n.url}/healthz`), { status: 200, json: { ok: true, node: id } }, 'health is open and names the node, the audience of its tokens');
  t.equal((await call(`${n.url}/metrics`)).status, 401);
  t.equal((await call(`${n.url}/metrics`, { headers: { authorization: makeReadToken(reader, { aud: id, method: 'GET', path: '/metrics' }) } })).status, 200);
  t.equal((await put(n.url, 'w', n.sign({ name: 'w', version: 1 }))).status, 202, 'a signed blueprint needs no token');
});

/** A strict check of the Prometheus text exposition format; returns the samples. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(comment[3]!)) throw new Error(`bad TYPE: ${line}`);
        typed.add(comment[2]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const family = m[1]!.replace(/_(bucket|sum|count|total|created)$/, '');
    if (!typed.has(m[1]!) && !typed.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[5]));
  }
  return samples;
}

t.test('metrics are Prometheus text with workloads, refusals and API latency', async (t) => {
  const n = await startNode(t);
  await put(n.url, 'm', n.sign({ name: 'm', version: 1, workloads: [box('a'), box('b')] }));
  await put(n.url, 'm', n.sign({ name: 'm', version: 1 }));
  await call(`${n.url}/v1/blueprints/m`, { method: 'PUT', text: '{"name": ' });
  await waitFor(async () => (await call(`${n.url}/v1/blueprints/m`)).text.split('"running"').length === 3, { timeoutMs: 5000, what: 'both running' });
  const res = await call(`${n.url}/metrics`);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const samples = parsePrometheus(res.text);
  t.equal(samples.get('zone_workloads{state="running"}'), 2);
  t.equal(samples.get('zone_workloads{state="failed"}'), 0);
  t.equal(samples.get('zone_workload_restarts{blueprint="m",workload="a"}'), 0);
  t.equal(samples.get('zone_blueprint_refusals_total{reason="STALE"}'), 1);
  t.equal(samples.get('zone_blueprint_refusals_total{reason="INVALID"}'), 1, 'a body the parser refused counts too');
  t.ok(samples.get('zone_api_request_duration_seconds_count{method="PUT",route="/v1/blueprints/:name",status="202"}'));
});

t.test('the OpenAPI document is valid OpenAPI 3 and documents every route with the blueprint schema', async (t) => {
  const n = await startNode(t);
  const doc = (await call(`${n.url}/docs`)).json;
  t.same((await call(`${n.url}/docs/json`)).json, doc);
  const result = await new Validator().validate(doc);
  t.ok(result.valid, JSON.stringify(result.errors)?.slice(0, 2000));
  const paths = doc.paths as Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: object } }> } }>>;
  t.same(Object.keys(paths).sort(), ['/healthz', '/metrics', '/v1/blueprints/', '/v1/blueprints/{name}', '/v1/blueprints/{name}/workloads/{workload}/logs', '/v1/events/', '/v1/grid/blueprints', '/v1/grid/events/', '/v1/grid/fs/{*}', '/v1/grid/images/', '/v1/grid/images/uploads', '/v1/grid/images/uploads/{id}', '/v1/grid/images/uploads/{id}/commit', '/v1/grid/logs/{name}/{workload}', '/v1/grid/pipes', '/v1/grid/proc', '/v1/grid/proc/{node}/{blueprint}/{workload}/restart', '/v1/grid/usage', '/v1/node/', '/v1/node/release', '/v1/node/release/stored', '/v1/volumes/']);
  t.ok(paths['/v1/blueprints/{name}']!.put!.requestBody!.content['application/json']!.schema.properties, 'the body schema is the blueprint schema');
});
