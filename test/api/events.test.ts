import { request, type IncomingMessage } from 'node:http';
import t from 'tap';
import { createParser } from 'eventsource-parser';
import type { ZoneEvent } from '../../appliance/types.ts';
import { buildServer } from '../../api/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { box, call, startNode } from './node.ts';
import { StubAppliance } from './stub-appliance.ts';

/** An SSE reader over a raw HTTP response: collects events, can pause like a slow client. */
function openStream(url: string, headers: Record<string, string> = {}) {
  const events: ZoneEvent[] = [];
  let response: IncomingMessage | undefined;
  const parser = createParser({ onEvent: (m) => events.push(JSON.parse(m.data) as ZoneEvent) });
  const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
  const ended = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      response = res;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => parser.feed(chunk));
      res.on('end', resolve);
      res.on('close', resolve);
    });
    req.on('error', reject);
  });
  req.end();
  return { events, ended, response: () => response, close: () => req.destroy() };
}

t.test('events stream from the stored log, filter by blueprint, resume after a seq, and follow live', async (t) => {
  const n = await startNode(t);
  await call(`${n.url}/v1/blueprints/one`, { method: 'PUT', body: n.sign({ name: 'one', version: 1, workloads: [box('a')] }) });
  await call(`${n.url}/v1/blueprints/two`, { method: 'PUT', body: n.sign({ name: 'two', version: 1, workloads: [box('b')] }) });
  await waitFor(() => n.appliance.listBlueprints().every((b) => b.workloads.every((w) => w.state === 'running')), { timeoutMs: 5000, what: 'running' });

  const all = openStream(`${n.url}/v1/events?follow=false`);
  await all.ended;
  t.ok(all.events.length >= 6, 'accepted, pending, running for each');
  t.same(all.events.map((e) => e.seq), all.events.map((_, i) => i + 1), 'every seq, in order');

  const one = openStream(`${n.url}/v1/events?follow=false&blueprint=one`);
  await one.ended;
  t.ok(one.events.length >= 3 && one.events.every((e) => e.blueprint === 'one'), 'only blueprint one');

  const after = openStream(`${n.url}/v1/events?follow=false&after=3`);
  await after.ended;
  t.equal(after.events[0]?.seq, 4, '?after=3 starts at 4');
  const resumed = openStream(`${n.url}/v1/events?follow=false&after=1`, { 'last-event-id': '5' });
  await resumed.ended;
  t.equal(resumed.events[0]?.seq, 6, 'Last-Event-ID wins over ?after=');

  const live = openStream(`${n.url}/v1/events?blueprint=two&after=${all.events.at(-1)!.seq}`);
  t.teardown(live.close);
  await waitFor(() => live.response(), { timeoutMs: 5000, what: 'stream open' });
  await call(`${n.url}/v1/blueprints/two`, { method: 'PUT', body: n.sign({ name: 'two', version: 2, workloads: [box('b'), box('c')] }) });
  await waitFor(() => live.events.find((e) => e.workload === 'c' && e.to === 'running'), { timeoutMs: 5000, what: 'live event of c running' });
  t.ok(live.events.every((e) => e.blueprint === 'two'), 'the filter holds for live events');
  t.same(live.events.map((e) => e.seq), [...live.events.map((e) => e.seq)].sort((x, y) => x - y), 'in order');
});

t.test('a slow client is not dropped: it reads on from the stored log and misses nothing', async (t) => {
  const stub = new StubAppliance();
  const server = await buildServer(stub);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const slow = openStream(`${url}/v1/events`);
  t.teardown(slow.close);
  const res = await waitFor(() => slow.response(), { timeoutMs: 5000, what: 'stream open' });
  res.pause();
  // About 5 MB of events while the client reads nothing: far more than the socket buffers.
  for (let i = 0; i < 20; i++) stub.addEvents(1000);
  res.resume();
  await waitFor(() => slow.events.length === 20_000, { timeoutMs: 30_000, what: 'all 20000 events read' });
  t.ok(slow.events.every((e, i) => e.seq === i + 1), 'every event once, in order');
});

t.test('closing the server ends open event streams', async (t) => {
  const stub = new StubAppliance();
  const server = await buildServer(stub);
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const s = openStream(`${url}/v1/events`);
  await waitFor(() => s.response(), { timeoutMs: 5000, what: 'stream open' });
  await server.close();
  await s.ended;
  t.pass('the stream ended with the server');
});
