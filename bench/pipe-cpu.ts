// What a pipe costs the appliance, in CPU rather than time (issue 23): on a machine shared
// with other work, wall-clock ratios follow the load, CPU seconds per byte much less.
// One node, one nats-server, in turns N rounds (3 by default):
// (p) a blueprint pipe through the real PipeRunner and DockerDriver: `dd` writes 64 MiB of
//     zeros to A's stdout, `wc -c` reads B's stdin; this process is both ends' appliance;
// (n) the baseline: the same bytes through bare NATS clients in this process, in messages
//     of a pipe's size, the producer's window, a pull consumer like the feeder's;
// (d) the other baseline: Docker alone. The same two containers, made as for (p); this
//     process copies A's stdout attach into B's stdin attach (no NATS): the pipe's two
//     attaches and containers without the stream between them;
// (t) what the goal compares with: the same bytes from `dd` through busybox `nc` over
//     loopback TCP into `wc -c`, host processes, no container.
// Each: this process's CPU (user + system), its garbage collections, the wall time, and
// the whole machine's CPU (/proc/stat, every process: dockerd, the shims, nats-server,
// the containers): on a machine of few cores a transfer that keeps them busy moves at
// most cores / machine CPU per byte, whatever its wall time on an idle machine.
// Run: node --import tsx bench/pipe-cpu.ts [ROUNDS]; with ZONE_BENCH_PERF=DIR each way of
// each round is recorded by `perf record -a` too (DIR/p-0.perf, ...; see perf-record.ts).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createLogger } from '../appliance/logger.ts';
import { NatsServer } from '../appliance/pseudokernel/nats/nats-server.ts';
import { PIPE_CHUNK_BYTES } from '../appliance/pseudokernel/pipes/ends.ts';
import { PipeRunner } from '../appliance/pseudokernel/pipes/runner.ts';
import { WINDOW_MESSAGES } from '../appliance/pseudokernel/pipes/window.ts';
import { localPipeEnds } from '../blueprints/pipes.ts';
import { removeNodeContainers } from '../cli/cluster/grid.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { workloadId } from '../drivers/names.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';
import { waitFor } from '../test/helpers/wait.ts';
import { copyAttached, pipedPair } from './attach-pair.ts';
import { machineCpuMs, processStat } from './machine-cpu.ts';
import { profiled } from './perf-record.ts';

const ROUNDS = Number.parseInt(process.argv[2] ?? '3', 10);
const BYTES = 64 * 1024 * 1024;
const NODE = `pcpu${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 8).toString('base64')}`;
const run = promisify(execFile);

interface Cost { cpuMs: number; gcMs: number; gcs: number; wallMs: number; machineMs: number; natsMs: number }

/** CPU time nats-server has spent, in ms. */
const natsServerCpuMs = () => processStat(server.pid!)?.cpuMs ?? 0;

let gcMs = 0;
let gcs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    gcs++;
  }
}).observe({ entryTypes: ['gc'] });

/** What `work` costs; with ZONE_BENCH_PERF=DIR, recorded by perf as DIR/NAME.perf too. */
async function measured(name: string, work: () => Promise<void>): Promise<Cost> {
  const cpu = process.cpuUsage();
  const [gc0, n0, t0, m0, s0] = [gcMs, gcs, performance.now(), machineCpuMs(), natsServerCpuMs()];
  await profiled(name, work);
  const used = process.cpuUsage(cpu);
  return { cpuMs: (used.user + used.system) / 1000, gcMs: gcMs - gc0, gcs: gcs - n0, wallMs: performance.now() - t0, machineMs: machineCpuMs() - m0, natsMs: natsServerCpuMs() - s0 };
}

const dir = mkdtempSync(join(tmpdir(), 'zone-bench-pipe-cpu-'));
const logger = createLogger({ level: 'warn' });
const driver = new DockerDriver({ node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } }, { removeGraceMs: 1000 });
const [port, ncPort] = (await freeLoopbackPorts(2)) as [number, number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: NODE, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
await server.start();
const nc = await server.connect();
const runner = new PipeRunner({ nc, logger, resyncMs: 1000, locate: (end) => ({ driver, id: workloadId(NODE, end.owner, end.blueprint, end.workload) }) });

/** The two containers of round `name`, A's stdout piped to B's stdin in its blueprint: A sleeps 1 s first, so that the ends are ready. */
const ddToWc = (name: string) => pipedPair(driver, NODE, OWNER, name, { source: ['sh', '-c', `sleep 1; dd if=/dev/zero bs=65536 count=${BYTES / 65536} 2>/dev/null`], sink: ['wc', '-c'] });

/**
 * Waits for wc to end and checks its count. `docker wait` waits in a process of its own:
 * polling Docker from here would add this process's requests to the CPU measured (a
 * connection per inspect, every 20 ms). The wall time is Docker's: from A's start plus
 * the 1 s it sleeps before dd, to wc's exit (A started before the measure did).
 */
async function untilCounted(name: string, source: string, sink: string, work: () => Promise<void>): Promise<Cost> {
  const cost = await measured(name, async () => {
    await Promise.all([work(), run('docker', ['wait', sink], { timeout: 240_000 })]);
  });
  const counted = Number((await run('docker', ['logs', sink])).stdout.trim());
  if (counted !== BYTES) throw new Error(`${counted} bytes reached wc, not ${BYTES}`);
  const [started, finished] = (await run('docker', ['inspect', '-f', '{{.State.StartedAt}} {{.State.FinishedAt}}', source, sink])).stdout.trim().split('\n');
  return { ...cost, wallMs: Date.parse(finished!.split(' ')[1]!) - Date.parse(started!.split(' ')[0]!) - 1000 };
}

/** (p): from the moment both containers are started until wc has exited. */
async function pipeRound(i: number): Promise<Cost> {
  const { document, source, sink } = await ddToWc(`cpu${i}`);
  await runner.setEnds(localPipeEnds(NODE, document));
  const cost = await untilCounted(`p-${i}`, source, sink, async () => undefined);
  await runner.setEnds([]);
  return cost;
}

/** (d): the same, A's stdout attach copied into B's stdin attach by this process. */
async function dockerRound(i: number): Promise<Cost> {
  const pair = await ddToWc(`dock${i}`);
  return untilCounted(`d-${i}`, pair.source, pair.sink, () => copyAttached(driver, pair));
}

/** (n): the same bytes through bare clients (two connections, as two appliances would have). */
async function natsRound(i: number): Promise<Cost> {
  const stream = `cpu-bare-${i}`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [stream], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.New, max_bytes: 1024 ** 3, num_replicas: 1 });
  const reader = await server.connect();
  try {
    const messages = await (await jetstream(reader).consumers.get(stream, { deliver_policy: DeliverPolicy.All })).consume({ max_messages: 32 });
    const js = jetstream(nc);
    return await measured(`n-${i}`, async () => {
      const received = (async () => {
        let got = 0;
        for await (const m of messages) if ((got += m.data.length) >= BYTES) break;
      })();
      const inFlight: Promise<unknown>[] = [];
      for (let offset = 0; offset < BYTES; offset += PIPE_CHUNK_BYTES) {
        if (inFlight.length >= WINDOW_MESSAGES) await inFlight.shift();
        inFlight.push(js.publish(stream, Buffer.alloc(PIPE_CHUNK_BYTES), { msgID: String(offset) }));
      }
      await Promise.all(inFlight);
      await received;
    });
  } finally {
    await reader.close();
    await jsm.streams.delete(stream);
  }
}

/** (t): `dd | nc` to `nc -l | wc -c` on loopback; the listener's stdin stays open (busybox nc ends at either side's EOF). */
async function ncRound(i: number): Promise<Cost> {
  const listener = spawn('sh', ['-c', `busybox nc -l -p ${ncPort} | wc -c`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let counted = '';
  listener.stdout.on('data', (d: Buffer) => (counted += String(d)));
  const exited = new Promise((resolve) => listener.once('exit', resolve));
  try {
    await waitFor(async () => (await run('ss', ['-Hltn', `sport = :${ncPort}`])).stdout.includes(String(ncPort)), { what: 'the nc listener', timeoutMs: 10_000, intervalMs: 20 });
    const cost = await measured(`t-${i}`, async () => {
      await run('sh', ['-c', `dd if=/dev/zero bs=65536 count=${BYTES / 65536} 2>/dev/null | busybox nc 127.0.0.1 ${ncPort}`]);
      await exited;
    });
    if (Number(counted.trim()) !== BYTES) throw new Error(`${counted.trim()} bytes reached wc over nc, not ${BYTES}`);
    return cost;
  } finally {
    listener.kill();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const pipes: Cost[] = [];
  const bare: Cost[] = [];
  const dockers: Cost[] = [];
  const ncs: Cost[] = [];
  const said = (c: Cost) => `cpu ${c.cpuMs.toFixed(0)} ms, gc ${c.gcMs.toFixed(0)} ms (${c.gcs}), ${(c.wallMs / 1000).toFixed(2)} s, machine ${c.machineMs} ms (nats-server ${c.natsMs} ms)`;
  for (let i = 0; i < ROUNDS; i++) {
    pipes.push(await pipeRound(i));
    bare.push(await natsRound(i));
    dockers.push(await dockerRound(i));
    ncs.push(await ncRound(i));
    console.log(`round ${i + 1}: pipe ${said(pipes[i]!)}; bare NATS ${said(bare[i]!)}; Docker alone ${said(dockers[i]!)}; nc ${said(ncs[i]!)}`);
  }
  const cores = availableParallelism();
  const row = (name: string, c: Cost[]) => {
    const machine = median(c.map((x) => x.machineMs));
    return `${name.padEnd(44)} cpu ${median(c.map((x) => x.cpuMs)).toFixed(0).padStart(5)} ms   gc ${median(c.map((x) => x.gcMs)).toFixed(0).padStart(5)} ms in ${median(c.map((x) => x.gcs))}   wall ${(median(c.map((x) => x.wallMs)) / 1000).toFixed(2)} s   machine cpu ${String(machine).padStart(5)} ms, nats-server ${String(median(c.map((x) => x.natsMs))).padStart(4)} ms (at most ${(64 / (machine / 1000 / cores)).toFixed(0)} MiB/s on ${cores} cores)`;
  };
  console.log(`pipe CPU benchmark: 64 MiB, one node, medians of ${ROUNDS}`);
  console.log(row('(p) pipe, both ends in this process', pipes));
  console.log(row('(n) bare NATS clients, same bytes', bare));
  console.log(row('(d) Docker alone: attach to attach', dockers));
  console.log(row('(t) dd | nc on loopback | wc -c, no container', ncs));
  const ratios = (name: string, base: Cost[]) => `ratio p/${name}: cpu ${median(pipes.map((p, i) => p.cpuMs / base[i]!.cpuMs)).toFixed(2)}x, wall ${median(pipes.map((p, i) => p.wallMs / base[i]!.wallMs)).toFixed(2)}x`;
  console.log(`${ratios('n', bare)}; ${ratios('d', dockers)} (medians of the rounds' ratios)`);
  const machineRatio = (base: Cost[]) => median(pipes.map((p, i) => p.machineMs / base[i]!.machineMs)).toFixed(2);
  console.log(`machine cpu: p/(n+d) ${median(pipes.map((p, i) => p.machineMs / (bare[i]!.machineMs + dockers[i]!.machineMs))).toFixed(2)}x, p/t ${machineRatio(ncs)}x, d/t ${median(dockers.map((d, i) => d.machineMs / ncs[i]!.machineMs)).toFixed(2)}x, n/t ${median(bare.map((n, i) => n.machineMs / ncs[i]!.machineMs)).toFixed(2)}x (medians of the rounds' ratios)`);
} finally {
  await runner.stop();
  await driver.close();
  await removeNodeContainers([NODE]);
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
