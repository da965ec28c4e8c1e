// FIFOs of /zone/fs across nodes (issue 24), baselines in the same run. Two nats-servers
// clustered on loopback (routes with mutual TLS, as nodes run them), each "node" with its
// own /zone mount and FIFO relay, as in test/appliance/pseudokernel/fifos:
//  (a) FIFO across nodes: `dd` writes MiB of zeros into /zone/fs/p on node 1, `dd` on
//      node 3 reads it to /dev/null; timed from both starting until the reader has EOF
//      (so it includes the join: both opens wait for the relays);
//  (b) the transport of a blueprint pipe without Docker: the same bytes in messages of
//      PIPE_CHUNK_BYTES published with the pipes' headers on node 1's server through the
//      pipes' publish window (as the pipes' producer does), and consumed through node 3's (bench/pipes.ts
//      measures whole blueprint pipes, container stdout to container stdin, on a `zone
//      cluster`: too heavy to run beside this, its figure is in BENCHMARKS.md);
//  (c) the same FIFO with writer and reader on one mount: the kernel's own pipe, the ceiling.
// Rounds alternate (a), (b), (c); the median of each is shown.
// Run (takes /tmp/zone-cluster.lock): node --import tsx bench/fifos.ts [MiB, default 64] [rounds, default 3]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '../appliance/logger.ts';
import { FifoRelay } from '../appliance/pseudokernel/fifos/relay.ts';
import { sessionMessages, sessionPipe } from '../appliance/pseudokernel/fifos/session.ts';
import { FIFO_WAITERS_PATH } from '../appliance/pseudokernel/fifos/waiters.ts';
import { NatsGridFs } from '../appliance/pseudokernel/fs/grid-fs.ts';
import { mountZone, type ZoneMount } from '../appliance/pseudokernel/mount/mount.ts';
import { NatsServer } from '../appliance/pseudokernel/nats/nats-server.ts';
import { PIPE_CHUNK_BYTES, PIPE_HEADERS, pipeMessageId } from '../appliance/pseudokernel/pipes/ends.ts';
import { ensurePipeStream } from '../appliance/pseudokernel/pipes/stream.ts';
import { PublishWindow } from '../appliance/pseudokernel/pipes/window.ts';
import { MemoryProcTable } from '../test/appliance/pseudokernel/memory-grid.ts';
import { loopbackGrid } from '../test/helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';

const run = promisify(execFile);
const MIB = Number.parseInt(process.argv[2] ?? '64', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '3', 10);
const BYTES = MIB * 2 ** 20;
const OWNER = `ed25519:${Buffer.alloc(32, 25).toString('base64')}`;
const NODES = ['n1', 'n3'] as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rate = (seconds: number) => MIB / seconds;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** dd writing MIB of zeros into `into` and dd reading `from` to the end; the reader's byte count is checked. */
async function fifoTransfer(into: string, from: string): Promise<void> {
  const [read] = await Promise.all([
    run('dd', [`if=${from}`, 'of=/dev/null', 'bs=64k'], { encoding: 'utf8' }),
    run('dd', ['if=/dev/zero', `of=${into}`, 'bs=64k', `count=${MIB * 16}`]),
  ]);
  if (!read.stderr.includes(`${BYTES} bytes`)) throw new Error(`the reader did not read ${BYTES} bytes: ${read.stderr}`);
}

/** (b): the bytes through a pipe stream, published on `from`, consumed on `to`. */
async function pipeTransfer(from: NatsConnection, to: NatsConnection): Promise<void> {
  const session = randomBytes(16).toString('hex');
  const pipe = sessionPipe(OWNER, session, 'bench-from', 'bench-to');
  const jsm = await jetstreamManager(from);
  await ensurePipeStream(jsm, pipe);
  const logger = createLogger({ level: 'error' });
  const signal = new AbortController().signal;
  const messages = await sessionMessages({ nc: to, js: jetstream(to), jsm: await jetstreamManager(to), logger, signal }, pipe);
  const received = (async () => {
    let bytes = 0;
    for await (const m of messages) {
      bytes += m.data.length;
      if (m.headers?.get(PIPE_HEADERS.eof)) break;
    }
    if (bytes !== BYTES) throw new Error(`the pipe gave ${bytes} bytes, not ${BYTES}`);
  })();
  const window = new PublishWindow({ js: jetstream(from), jsm, pipe, signal, logger, onStored: () => undefined }, 0);
  const chunk = new Uint8Array(PIPE_CHUNK_BYTES);
  for (let offset = 0; offset <= BYTES; offset += PIPE_CHUNK_BYTES) {
    const h = headers();
    h.set(PIPE_HEADERS.incarnation, session);
    h.set(PIPE_HEADERS.offset, String(offset));
    const eof = offset === BYTES;
    if (eof) h.set(PIPE_HEADERS.eof, '0');
    await window.send({ data: eof ? new Uint8Array(0) : chunk, headers: h, msgID: pipeMessageId(session, eof ? null : offset) });
  }
  await window.flush();
  await received;
  await messages.stop();
  await jsm.streams.delete(pipe.stream);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/fifos.ts needs root (FUSE mounts, the fifo-waiters helper reads /proc)');
  const dir = mkdtempSync(join(tmpdir(), 'zone-bench-fifos-'));
  const logger = createLogger({ level: 'error' });
  const servers: NatsServer[] = [];
  const connections: NatsConnection[] = [];
  const mounts: ZoneMount[] = [];
  const relays: FifoRelay[] = [];
  try {
    const ports = await freeLoopbackPorts(2 * NODES.length);
    const grid = await loopbackGrid(dir);
    for (const [i, node] of NODES.entries()) {
      servers.push(new NatsServer({
        dataDir: join(dir, `nats-${node}`), serverName: node, host: '127.0.0.1', port: ports[i]!, logger, startTimeoutMs: 30_000,
        cluster: { name: 'zone-bench-fifos', host: '127.0.0.1', port: ports[NODES.length + i]!, routes: ports.slice(NODES.length).filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`), ...(await grid.routeFiles(node)) },
      }));
    }
    await Promise.all(servers.map((server) => server.start()));
    connections.push(...(await Promise.all(servers.map((server) => server.connect()))));
    for (const [i, node] of NODES.entries()) {
      const fs = await NatsGridFs.open(connections[i]!, { owner: OWNER, replicas: NODES.length, logger });
      const mount = await mountZone({ mountpoint: join(dir, `zone-${node}`), grid: fs, proc: new MemoryProcTable([]), self: { name: 'w', blueprint: 'b', node, owner: OWNER, ip: null }, logger, scratchParent: dir, onFifo: () => relays[i]?.fifoLookedUp() });
      mounts.push(mount);
      const relay = new FifoRelay({ nc: connections[i]!, node, logger, waitersCommand: FIFO_WAITERS_PATH });
      await relay.start();
      await relay.addMount(mount.mountpoint, OWNER);
      relays.push(relay);
    }
    const [p1, p3] = mounts.map((m) => join(m.mountpoint, 'fs', 'p')) as [string, string];
    await run('mkfifo', [p1]);
    const results = { fifo: [] as number[], pipe: [] as number[], local: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      results.fifo.push(await timed(() => fifoTransfer(p1, p3)));
      results.pipe.push(await timed(() => pipeTransfer(connections[0]!, connections[1]!)));
      results.local.push(await timed(() => fifoTransfer(p1, p1)));
    }
    const a = rate(median(results.fifo));
    const b = rate(median(results.pipe));
    const c = rate(median(results.local));
    console.log(`FIFO ${MIB} MiB, ${ROUNDS} rounds (medians; seconds per round: a ${results.fifo.map((s) => s.toFixed(2)).join(' ')}, b ${results.pipe.map((s) => s.toFixed(2)).join(' ')}, c ${results.local.map((s) => s.toFixed(2)).join(' ')})`);
    console.log(`| (a) FIFO across nodes (node 1 dd -> /zone/fs/p -> node 3 dd) | ${a.toFixed(1)} MiB/s |`);
    console.log(`| (b) pipe transport (pipe stream, node 1 publishes, node 3 consumes) | ${b.toFixed(1)} MiB/s |`);
    console.log(`| (c) FIFO on one mount (the kernel's pipe) | ${c.toFixed(1)} MiB/s |`);
    console.log(`| ratio a/b | ${(a / b).toFixed(2)}x |`);
    console.log(`| ratio a/c | ${(a / c).toFixed(3)}x |`);
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
    await Promise.all(mounts.map((mount) => mount.unmount()));
    await Promise.all(connections.map((nc) => nc.close()));
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
