// Event streams and log follows are bounded per client address and in all: one past a
// bound gets 429 naming it, the node keeps serving, and a closed stream frees its slot.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { buildServer } from '../../api/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { call } from './node.ts';
import { StubAppliance } from './stub-appliance.ts';

/** GET `path` from local address `from`; resolves with the response head once it arrives. */
function open(url: string, path: string, from: string): Promise<{ res: IncomingMessage; req: ClientRequest; body(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { localAddress: from });
    req.on('response', (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => { text += chunk; });
      const done = new Promise<string>((r) => res.on('end', () => r(text)).on('close', () => r(text)));
      resolve({ res, req, body: () => done });
    });
    req.on('error', reject);
    req.end();
  });
}

async function startServer(t: Test, stub = new StubAppliance()) {
  const server = await buildServer(stub, {
    rateLimit: false,
    streams: { events: { perClient: 2, total: 3 }, logFollows: { perClient: 1, total: 2 } },
  });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  return url;
}

/** The node still answers /healthz and an ordinary read. */
async function stillServes(t: Test, url: string): Promise<void> {
  t.equal((await call(`${url}/healthz`)).status, 200, '/healthz answers');
  t.equal((await call(`${url}/v1/blueprints`)).status, 200, 'GET /v1/blueprints answers');
}

t.test('event streams: a third from one client and a fourth in all get 429 naming the bound', async (t) => {
  const url = await startServer(t);
  const streams = [await open(url, '/v1/events', '127.0.0.1'), await open(url, '/v1/events', '127.0.0.1')];
  t.teardown(() => streams.forEach((s) => s.req.destroy()));
  t.same(streams.map((s) => s.res.statusCode), [200, 200]);

  const third = await open(url, '/v1/events', '127.0.0.1');
  t.equal(third.res.statusCode, 429);
  t.match(JSON.parse(await third.body()), { error: 'TOO_MANY', message: /too many event streams: 2 .* open from 127\.0\.0\.1.*limits\.eventStreams\.perClient = 2/, details: { limit: 2 } });

  streams.push(await open(url, '/v1/events', '127.0.0.2'));
  t.equal(streams[2]!.res.statusCode, 200, 'another client may open one while the total allows');
  const fourth = await open(url, '/v1/events', '127.0.0.3');
  t.equal(fourth.res.statusCode, 429);
  t.match(JSON.parse(await fourth.body()), { error: 'TOO_MANY', message: /3 event streams are open.*limits\.eventStreams\.total = 3/ });
  await stillServes(t, url);

  // A stream the client closed frees its slot.
  streams[0]!.req.destroy();
  await streams[0]!.body();
  // The server sees the close a moment after the client: asked again until then.
  const again = await waitFor(async () => {
    const s = await open(url, '/v1/events', '127.0.0.3');
    if (s.res.statusCode === 200) return s;
    s.req.destroy();
    return null;
  }, { timeoutMs: 5000, what: 'a slot free again once a stream closed' });
  t.teardown(() => again.req.destroy());
  t.pass('a slot is free again once a stream closed');
});

t.test('log follows: a second from one client and a third in all get 429; plain log reads are not counted', async (t) => {
  const stub = new StubAppliance();
  const engineStreams: PassThrough[] = [];
  // A follow that never ends by itself, like the engine's.
  stub.logs = async () => {
    const s = new PassThrough();
    s.write('line\n');
    engineStreams.push(s);
    return s;
  };
  const url = await startServer(t, stub);
  const path = '/v1/blueprints/bp/workloads/w/logs?follow=true';
  const first = await open(url, path, '127.0.0.1');
  t.teardown(() => first.req.destroy());
  t.equal(first.res.statusCode, 200);
  const second = await open(url, path, '127.0.0.1');
  t.equal(second.res.statusCode, 429);
  t.match(JSON.parse(await second.body()), { error: 'TOO_MANY', message: /too many log follows: 1 .* from 127\.0\.0\.1.*limits\.logFollows\.perClient = 1/ });
  t.equal(engineStreams.length, 1, 'the refused follow asked the engine for nothing');

  const other = await open(url, path, '127.0.0.2');
  t.teardown(() => other.req.destroy());
  t.equal(other.res.statusCode, 200);
  const third = await open(url, path, '127.0.0.3');
  t.equal(third.res.statusCode, 429);
  t.match(JSON.parse(await third.body()), { message: /2 log follows are open.*limits\.logFollows\.total = 2/ });

  const plain = await open(url, '/v1/blueprints/bp/workloads/w/logs', '127.0.0.1');
  t.equal(plain.res.statusCode, 200, 'a read without follow is not a follow');
  engineStreams.at(-1)!.end();
  t.equal(await plain.body(), 'line\n');
  await stillServes(t, url);

  first.req.destroy();
  await first.body();
  await new Promise<void>((resolve) => engineStreams[0]!.once('close', resolve));
  t.pass("the client's close destroyed the engine stream");
});

t.test("the server's close ends open log follows and event streams", async (t) => {
  const stub = new StubAppliance();
  const engine = new PassThrough();
  engine.write('line\n');
  stub.logs = async () => engine;
  const server = await buildServer(stub, { rateLimit: false });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const follow = await open(url, '/v1/blueprints/bp/workloads/w/logs?follow=true', '127.0.0.1');
  const events = await open(url, '/v1/events', '127.0.0.1');
  await server.close();
  t.same(await Promise.all([follow.body(), events.body()]), ['line\n', ': zone events\n\n'], 'both ended');
  await waitFor(() => engine.destroyed, { timeoutMs: 2000, what: 'the engine stream let go' });
});
