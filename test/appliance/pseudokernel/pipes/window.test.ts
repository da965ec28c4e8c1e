// The producer's publish window against a real nats-server: a stream that fills up in
// the middle of a window refuses the rest, and once it has room again it holds every
// message once, in order, without a gap.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscardPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { pipeIdentity } from '../../../../blueprints/pipes.ts';
import { PIPE_HEADERS, pipeMessageOf } from '../../../../appliance/pseudokernel/pipes/ends.ts';
import { PublishWindow, WINDOW_MESSAGES, type OutgoingMessage } from '../../../../appliance/pseudokernel/pipes/window.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-window-'));
const logs: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
const [port] = (await freeLoopbackPorts(1)) as [number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: `pw${process.pid}`, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
await server.start();
const nc = await server.connect();
t.teardown(async () => {
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const message = (offset: number, size: number): OutgoingMessage => {
  const h = headers();
  h.set(PIPE_HEADERS.incarnation, 'a');
  h.set(PIPE_HEADERS.offset, String(offset));
  return { data: new Uint8Array(size).fill(offset % 251), headers: h, msgID: `a:${offset}` };
};

t.test('a stream that fills in the middle of the window holds every message once, in order, once it has room', async (t) => {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const pipe = pipeIdentity(`ed25519:${Buffer.alloc(32, 7).toString('base64')}`, 'n1/w/a.stdout', 'n1/w/b.stdin');
  const size = 4096;
  const count = 3 * WINDOW_MESSAGES;
  // Room for about a window's worth: the stream refuses messages while more are in flight.
  await jsm.streams.add({ name: pipe.stream, subjects: [pipe.subject], storage: StorageType.File, discard: DiscardPolicy.New, max_bytes: WINDOW_MESSAGES * size });
  const stored: number[] = [];
  const window = new PublishWindow({ js, jsm, pipe, signal: new AbortController().signal, logger, onStored: (m) => stored.push(Number(m.headers.get(PIPE_HEADERS.offset))) }, 0);
  const sending = (async () => {
    for (let i = 0; i < count; i++) await window.send(message(i * size, size));
    await window.flush();
  })();

  await waitFor(() => logs.some((l) => l.msg === 'publishing to the pipe stream failed; retrying'), { timeoutMs: 10_000, what: 'a refusal of the full stream' });
  t.ok(stored.length < count, 'the full stream holds the producer back');
  await jsm.streams.update(pipe.stream, { max_bytes: 2 * count * size });
  await sending;

  t.same(stored, Array.from({ length: count }, (_, i) => i * size), 'every message counted once, in order');
  const info = await jsm.streams.info(pipe.stream);
  t.equal(info.state.last_seq, count, 'the stream holds each once');
  for (let seq = 1; seq <= count; seq++) {
    const m = await jsm.streams.getMessage(pipe.stream, { seq });
    const offset = pipeMessageOf((name) => m?.header?.get(name) ?? '')?.offset;
    if (offset !== (seq - 1) * size) t.fail(`message ${seq} has offset ${offset}, not ${(seq - 1) * size}`);
  }
  t.pass('message n carries the bytes after message n - 1');
});
