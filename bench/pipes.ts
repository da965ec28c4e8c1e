// Pipes benchmark (issue 9), baseline in the same run, on a two-node `zone cluster`:
// (a) a blueprint pipe from a container on node 1 (stdout) to a container on node 2
//     (stdin), through the nodes' appliances and their clustered nats-servers;
// (b) a raw TCP stream (busybox nc) between two containers on the same two nodes, over
//     the WireGuard overlay planned with `zone network plan`.
// The same bytes on each path: a few stamped lines, 0.5 s apart (first-byte latency),
// then one stamped line and 64 MiB of zeros from dd (throughput). Both nodes are
// namespaces of this machine and the containers share one Docker daemon, so they read
// one clock: stamps are the kernel's wall clock in microseconds (busybox adjtimex).
// Throughput is timed from the producer's stamp taken just before dd starts writing to
// the consumer's stamp taken once `wc -c` has seen EOF (so it includes dd, the
// transport, the end-of-stream marker and wc).
// (c) raw TCP (the same nc scripts) between the two node namespaces over the cluster's
//     underlay, which is the path the nats-servers' route takes: what (a) rides on.
// (d) the pipe of (a) again, on a second two-node cluster whose nats routes run without
//     TLS (`plainRoutes`, a switch for this comparison only), up at the same time: the
//     ratio a/d is what route TLS costs a pipe.
// (e) bare NATS clients (bench/nats-route.ts) in the two node namespaces: 64 MiB in
//     messages of a pipe's size, with the producer's window, into a stream configured
//     like a pipe's and out through a pull consumer: what nats-server itself gives over
//     the route, without Docker or the appliance; before them, 5 stamped messages 0.5 s
//     apart give the stream's own part of a line's latency (stamped in Node: without the
//     shell stamps' cost, about 0.8 ms of each line of the other paths).
// (f) Docker alone: the same two containers as (a)'s, made by the Docker driver in this
//     process, A's stdout attach copied into B's stdin attach here, nothing between:
//     what a pipe's two ends cost without the stream.
// Each round also says how busy the machine's cores were (/proc/stat, every process) while
// the bulk bytes of each moved: a path whose cores were all busy moves what its CPU per
// byte allows, and no faster. So each round also gives the machine's CPU per 64 MiB of
// each path, beyond what the machine spends at rest, and what a pipe made of (e) and (f)
// alone, with nothing of its own, would reach against (c) at the same busy cores.
// (c), (e), (f), (a) and (d) run in turns, 3 rounds, so that the machine's other load hits
// each alike; the run of median throughput of each is shown, and the median of the
// rounds' own ratios.
// Run: node --import tsx bench/pipes.ts
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { workloadId } from '../drivers/names.ts';
import { GRID_AUDIENCE, makeReadToken } from '../lib/tokens.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Network } from '../blueprints/schema.ts';
import { clusterDown, clusterUp, removeNodeContainers, STATE_FILE, type ClusterState } from '../cli/cluster/grid.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { waitFor } from '../test/helpers/wait.ts';
import { copyAttached, pipedPair } from './attach-pair.ts';
import { CpuSampler } from './machine-cpu.ts';
import { profiled } from './perf-record.ts';

const run = promisify(execFile);
const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1), { maxBuffer: 16 * 2 ** 20 })).stdout;
const zone = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'cli/zone.ts', ...args], { timeout: 280_000 });

const NAME = 'pbench';
const SUBNET = '10.215.3.0/24';
/** The second cluster, whose nats routes run without TLS: what TLS costs the pipe. */
const PLAIN_NAME = 'pbpln';
const PLAIN_SUBNET = '10.215.4.0/24';
/** Pipe transfers on each cluster, in turns. */
const PIPE_ROUNDS = 3;
const RANGE = '10.216.0.0/16';
const PINGS = 5;
const COUNT = 1024; // dd blocks of 64 KiB: 64 MiB
const BYTES = COUNT * 65536;
const PORT = 5000;
/** The node name of (f)'s containers, made by this process's Docker driver. */
const DOCKER_NODE = 'pbdock';
/** How long the machine's CPU is sampled at rest, both clusters up, before the rounds. */
const REST_MS = 5000;

// Shell fragments (busybox sh). S prints the wall clock as seconds.microseconds.
const STAMP = 'S() { adjtimex | awk \'/tv_sec/{s=$2} /tv_usec/{printf "%d.%06d\\n", s, $2}\'; }';
const PRODUCE = `for i in $(seq ${PINGS}); do echo "ping $(S)"; sleep 0.5; done; echo "bulk $(S)"; dd if=/dev/zero bs=65536 count=${COUNT} 2>/dev/null`;
const CONSUME = 'while read a b; do echo "got $a $b $(S)"; [ "$a" = bulk ] && break; done; n=$(wc -c); echo "end $n $(S)"';

interface Result extends Throughput { firstUs: number; medianUs: number }

function resultOf(log: string): Result | null {
  const end = /^end (\d+) ([\d.]+)$/m.exec(log);
  if (!end) return null;
  const got = [...log.matchAll(/^got (\w+) ([\d.]+) ([\d.]+)$/gm)];
  const lat = got.filter((g) => g[1] === 'ping').map((g) => (Number(g[3]) - Number(g[2])) * 1e6);
  const bulk = got.find((g) => g[1] === 'bulk');
  if (!bulk || lat.length !== PINGS) throw new Error(`unexpected consumer output:\n${log}`);
  const seconds = Number(end[2]) - Number(bulk[2]);
  const bytes = Number(end[1]);
  const sorted = [...lat].sort((x, y) => x - y);
  return { firstUs: lat[0]!, medianUs: sorted[Math.floor(PINGS / 2)]!, startS: Number(bulk[2]), seconds, bytes, mbPerS: bytes / seconds / 2 ** 20 };
}

type Node = ClusterState['nodes'][number];

/** startS: when the bulk bytes began, on the machine's wall clock (s). */
interface Throughput { mbPerS: number; startS: number; seconds: number; bytes: number }
interface Round {
  underlay: Result; bareNats: Result; dockerAlone: Result; piped: Result; plain: Result;
  /** The machine's CPU-s per 64 MiB of (a), (c), (e) and (f), beyond its rest. */
  cpuS: { a: number; c: number; e: number; f: number };
}

/** The run of median throughput. */
function medianRun<R extends Throughput>(results: R[]): R {
  return [...results].sort((x, y) => x.mbPerS - y.mbPerS)[Math.floor(results.length / 2)]!;
}

/** A two-node cluster in BASE/NAME for `work`, down again afterwards whatever happens. */
async function withCluster<T>(base: string, name: string, plainRoutes: boolean, work: (state: ClusterState, n1: Node, n2: Node, owner: string) => Promise<T>): Promise<T> {
  const dir = join(base, name);
  let state: ClusterState | null = null;
  try {
    state = await clusterUp({ dir, name, subnet: plainRoutes ? PLAIN_SUBNET : SUBNET, count: 2, plainRoutes });
    const [n1, n2] = state.nodes as [Node, Node];
    const owner = (JSON.parse(await readFile(state.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
    return await work(state, n1, n2, owner);
  } finally {
    if (existsSync(join(dir, STATE_FILE))) await clusterDown(dir).catch((e: unknown) => console.error(`cluster down failed: ${String(e)}`));
    // Down removes them too, unless it failed before.
    if (state) await removeNodeContainers(state.nodes.flatMap((n) => (n.id ? [n.id] : []))).catch(() => undefined);
  }
}

function applier(base: string, state: ClusterState, owner: string) {
  return async (n: Node, doc: Record<string, unknown>, detach: boolean) => {
    const file = join(base, `${state.name}-${String(doc.name)}-${n.index}.yaml`);
    await writeFile(file, stringify({ version: 1, owner, node: n.id, ...doc }));
    await zone('apply', file, '--node', n.api, '--key', state.operatorKey, '--timeout', '120', ...(detach ? ['--detach'] : []));
  };
}

/** (a) the pipe, in blueprints named `name`: consumer on node 2 first (it waits on its stdin), then the producer. */
async function pipeTransfer(base: string, name: string, state: ClusterState, n1: Node, n2: Node, owner: string): Promise<Result> {
  const apply = applier(base, state, owner);
  const pipe = { from: `${n1.id}/${name}/source.stdout`, to: `${n2.id}/${name}/sink.stdin` };
  await apply(n2, { name, workloads: [{ name: 'sink', kind: 'container', image: 'zone/busybox', restart: 'never', command: ['sh', '-c', `${STAMP}; ${CONSUME}`] }], pipes: [{ ...pipe, to: 'sink.stdin' }] }, false);
  await apply(n1, { name, workloads: [{ name: 'source', kind: 'container', image: 'zone/busybox', restart: 'never', command: ['sh', '-c', `${STAMP}; sleep 1; ${PRODUCE}`] }], pipes: [{ ...pipe, from: 'source.stdout' }] }, true);
  return waitFor(async () => resultOf(await sh('docker', 'logs', workloadId(n2.id!, owner, name, 'sink'))), { what: 'the pipe transfer', timeoutMs: 240_000, intervalMs: 200 })
    .catch(async (err: unknown) => {
      // What each end saw, before the cluster (and its logs) goes.
      const pipeLines = async (n: Node) => (await readFile(join(n.dataDir, 'appliance.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('pipe')).slice(-15).join('\n');
      const sink = await sh('docker', 'logs', '--tail', '5', workloadId(n2.id!, owner, name, 'sink')).catch(() => '');
      throw new Error(`${String(err)}\nsink's last lines:\n${sink}\nnode 1's pipe log lines:\n${await pipeLines(n1)}\nnode 2's:\n${await pipeLines(n2)}`);
    });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/pipes.ts needs root (zone cluster)');
  const base = await mkdtemp(join(tmpdir(), 'zone-bench-pipes-'));
  const cpu = new CpuSampler({ intervalMs: 100, byProcess: true });
  const docker = new DockerDriver({ node: DOCKER_NODE, dataDir: base, openSecret: () => { throw new Error('no secrets here'); } }, { removeGraceMs: 1000 });
  /** The wall-clock span of a transfer's bulk bytes, in ms. */
  const bulk = (r: Throughput) => [r.startS * 1000, (r.startS + r.seconds) * 1000] as const;
  const busy = (r: Throughput) => {
    const share = cpu.busyBetween(...bulk(r));
    return share === null ? 'n/a' : `${(share * 100).toFixed(0)} %`;
  };
  const spent = (r: Throughput) => cpu.byProcessBetween(...bulk(r)).filter(([, ms]) => ms >= 30).map(([name, ms]) => `${name} ${ms}`).join(', ');
  try {
    const measured = await withCluster(base, NAME, false, async (state, n1, n2, owner) => {
      const dir = join(base, NAME);
      const apply = applier(base, state, owner);
      const logsOf = (n: Node, blueprint: string, w: string) => sh('docker', 'logs', workloadId(n.id!, owner, blueprint, w));
      const info = await (await fetch(`${n1.api}/v1/node`, { headers: { authorization: makeReadToken(readSigningKey(state.operatorKey), { aud: GRID_AUDIENCE, method: 'GET', path: '/v1/node' }) } })).json() as { drivers: { kind: string; details?: { implementation?: string } }[] };
      const implementation = info.drivers.find((d) => d.kind === 'network')?.details?.implementation ?? 'unknown';

      // (b) first, the baseline: nc over the planned WireGuard network. The containers
      // have no CAP_NET_RAW (no ping): node 1 waits until a connection to a second port
      // on node 2 goes through, which also completes the WireGuard handshake.
      const { stdout } = await zone('network', 'plan', '--nodes', join(dir, 'nodes.yaml'), '--owner', owner, '--name', 'mesh', '--range', RANGE);
      const plan = parse(stdout) as Record<string, { networks: Network[] }>;
      const ip2 = '10.216.1.10';
      const container = (name: string, script: string, i: number) => ({
        name, kind: 'container', image: 'zone/busybox', restart: 'never', command: ['sh', '-c', `${STAMP}; ${script}`], networks: [{ name: 'mesh', ip: `10.216.${i}.10` }],
      });
      await apply(n2, { name: 'tcp', networks: plan[n2.id!]!.networks, workloads: [container('sink', `echo listening; nc -l -p ${PORT + 1} </dev/null >/dev/null; nc -l -p ${PORT} | { ${CONSUME}; }`, 1)] }, false);
      await waitFor(async () => /listening/.test(await logsOf(n2, 'tcp', 'sink')), { what: 'the nc listener on node 2', timeoutMs: 60_000, intervalMs: 200 });
      await apply(n1, { name: 'tcp', networks: plan[n1.id!]!.networks, workloads: [container('source',
        `until nc -w 1 ${ip2} ${PORT + 1} </dev/null >/dev/null 2>&1; do sleep 0.2; done; sleep 1; { ${PRODUCE}; } | nc ${ip2} ${PORT}`, 0)] }, true);
      const tcp = await waitFor(async () => resultOf(await logsOf(n2, 'tcp', 'sink')), { what: 'the nc transfer', timeoutMs: 240_000, intervalMs: 200 });

      // (c) for reference, the path the pipe's bytes take between the nodes' nats-servers:
      // the same nc scripts run by the host's busybox directly in the node namespaces,
      // over the cluster's underlay (no WireGuard).
      const bin = join(base, 'bin');
      await mkdir(bin);
      await sh('busybox', '--install', '-s', bin);
      const inNs = (n: Node, script: string) => run('ip', ['netns', 'exec', n.namespace, 'busybox', 'sh', '-c', `PATH=${bin}:$PATH; ${STAMP}; ${script}`], { timeout: 240_000 });
      const underlayTransfer = async (): Promise<Result> => {
        const sinkDone = inNs(n2, `nc -l -p ${PORT + 1} </dev/null >/dev/null; nc -l -p ${PORT} | { ${CONSUME}; }`);
        sinkDone.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        await inNs(n1, `until nc -w 1 ${n2.address} ${PORT + 1} </dev/null >/dev/null 2>&1; do sleep 0.2; done; sleep 1; { ${PRODUCE}; } | nc ${n2.address} ${PORT}`);
        const result = resultOf((await sinkDone).stdout);
        if (!result) throw new Error('no result from the underlay nc');
        return result;
      };

      // (e) the same bytes through the nats-servers alone.
      const natsInNs = (n: Node, ...args: string[]) => {
        const child = spawn('ip', ['netns', 'exec', n.namespace, process.execPath, '--import', 'tsx', 'bench/nats-route.ts', ...args, n.dataDir, 'pbench-route', String(BYTES)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        const done = new Promise<string>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`bench/nats-route.ts ${args[0]} exited with ${code}: ${out}`)))));
        return { done, output: () => out };
      };
      const bareNatsTransfer = async (): Promise<Result> => {
        const natsSink = natsInNs(n2, 'sink');
        natsSink.done.catch(() => undefined); // awaited below
        await waitFor(() => natsSink.output().includes('ready'), { what: 'the bare NATS consumer on node 2', timeoutMs: 60_000, intervalMs: 100 });
        const natsStart = Number(/^start ([\d.]+)$/m.exec(await natsInNs(n1, 'source').done)?.[1]);
        const sinkOutput = await natsSink.done;
        const natsEnd = /^end (\d+) ([\d.]+)$/m.exec(sinkOutput);
        const pings = [...sinkOutput.matchAll(/^ping (\d+)$/gm)].map((m) => Number(m[1]));
        if (!natsEnd || !natsStart || pings.length !== PINGS) throw new Error(`no result from the bare NATS clients: ${sinkOutput}`);
        const seconds = Number(natsEnd[2]) - natsStart;
        const sorted = [...pings].sort((x, y) => x - y);
        return { bytes: Number(natsEnd[1]), startS: natsStart, seconds, mbPerS: Number(natsEnd[1]) / seconds / 2 ** 20, firstUs: pings[0]!, medianUs: sorted[Math.floor(PINGS / 2)]! };
      };

      // (f) Docker alone: the pipe's containers and attaches, copied into each other here.
      const dockerAloneTransfer = async (i: number): Promise<Result> => {
        const pair = await pipedPair(docker, DOCKER_NODE, owner, `dock${i}`, { source: ['sh', '-c', `${STAMP}; sleep 1; ${PRODUCE}`], sink: ['sh', '-c', `${STAMP}; ${CONSUME}`] });
        await copyAttached(docker, pair);
        return waitFor(async () => resultOf(await sh('docker', 'logs', pair.sink)), { what: 'the attach-to-attach transfer', timeoutMs: 240_000, intervalMs: 200 });
      };

      // (c), (e), (f), (a) and (d) in turns, both clusters up at once: the machine's other
      // load hits each path alike.
      const runs = await withCluster(base, PLAIN_NAME, true, async (plainState, p1, p2, plainOwner) => {
        const restFrom = Date.now();
        await delay(REST_MS);
        const rest = cpu.busyBetween(restFrom, Date.now() - 200) ?? 0;
        console.log(`at rest, both clusters up: the cores were ${(rest * 100).toFixed(1)} % busy`);
        /** The machine's CPU-s per 64 MiB that a transfer spent beyond the machine's rest. */
        const machineCpuS = (r: Result) => ((cpu.busyBetween(...bulk(r)) ?? Number.NaN) - rest) * availableParallelism() * r.seconds * (BYTES / r.bytes);
        const rounds: Round[] = [];
        for (let i = 0; i < PIPE_ROUNDS; i++) {
          const underlay = await profiled(`nc-${i}`, underlayTransfer);
          const bareNats = await profiled(`nats-${i}`, bareNatsTransfer);
          const dockerAlone = await profiled(`docker-${i}`, () => dockerAloneTransfer(i));
          const piped = await profiled(`pipe-${i}`, () => pipeTransfer(base, `pipe${i}`, state, n1, n2, owner));
          const plain = await pipeTransfer(base, `pipe${i}`, plainState, p1, p2, plainOwner);
          console.log(`round ${i + 1}: the cores were busy during the bulk bytes: (a) ${busy(piped)}, (c) ${busy(underlay)}, (d) ${busy(plain)}, (e) ${busy(bareNats)}, (f) ${busy(dockerAlone)}`);
          for (const [path, r] of [['a', piped], ['c', underlay], ['e', bareNats], ['f', dockerAlone]] as const) console.log(`round ${i + 1}: (${path}) CPU ms by process during the bulk: ${spent(r)}`);
          const [a, c, e, f] = [piped, underlay, bareNats, dockerAlone].map(machineCpuS) as [number, number, number, number];
          rounds.push({ underlay, bareNats, dockerAlone, piped, plain, cpuS: { a, c, e, f } });
          console.log(`round ${i + 1}: machine CPU-s per 64 MiB beyond rest: (a) ${a.toFixed(2)}, (c) ${c.toFixed(2)}, (e) ${e.toFixed(2)}, (f) ${f.toFixed(2)}; a pipe of (e) and (f) alone would spend ${(e + f).toFixed(2)}, and reach ${(c / (e + f)).toFixed(2)}x of (c) at the same busy cores; (a) spends ${(a / (e + f)).toFixed(2)}x of that`);
          console.log(`round ${i + 1}: (a) ${piped.mbPerS.toFixed(1)}, (c) ${underlay.mbPerS.toFixed(1)}, (d) ${plain.mbPerS.toFixed(1)}, (e) ${bareNats.mbPerS.toFixed(1)}, (f) ${dockerAlone.mbPerS.toFixed(1)} MiB/s; first line (a) ${(piped.firstUs / 1000).toFixed(2)}, (c) ${(underlay.firstUs / 1000).toFixed(2)}, (e) ${(bareNats.firstUs / 1000).toFixed(2)}, (f) ${(dockerAlone.firstUs / 1000).toFixed(2)} ms; median line (a) ${(piped.medianUs / 1000).toFixed(2)}, (c) ${(underlay.medianUs / 1000).toFixed(2)}, (e) ${(bareNats.medianUs / 1000).toFixed(2)}, (f) ${(dockerAlone.medianUs / 1000).toFixed(2)} ms`);
        }
        return rounds;
      });
      return {
        implementation, tcp, rounds: runs,
        underlay: medianRun(runs.map((r) => r.underlay)), bareNats: medianRun(runs.map((r) => r.bareNats)), dockerAlone: medianRun(runs.map((r) => r.dockerAlone)),
        piped: medianRun(runs.map((r) => r.piped)), plain: medianRun(runs.map((r) => r.plain)),
      };
    });
    const { implementation, tcp, rounds, underlay, bareNats, dockerAlone, piped, plain } = measured;
    const medianOf = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

    const expected = BYTES;
    for (const [name, r] of [['pipe', piped], ['tcp', tcp], ['underlay', underlay], ['plain-route pipe', plain], ['attach-to-attach', dockerAlone]] as const) {
      if (r.bytes !== expected) console.log(`warning: ${name} consumer counted ${r.bytes} bytes, expected ${expected}`);
    }
    const row = (name: string, r: Result) => `${name.padEnd(44)} ${r.mbPerS.toFixed(1).padStart(7)} MiB/s (${r.seconds.toFixed(3)} s)   first line ${(r.firstUs / 1000).toFixed(2).padStart(7)} ms   median of ${PINGS} ${(r.medianUs / 1000).toFixed(2).padStart(7)} ms`;
    console.log(`pipes benchmark: 2-node zone cluster, ${BYTES / 2 ** 20} MiB of zeros after ${PINGS} stamped lines; WireGuard implementation: ${implementation}; pipes: the run of median throughput of ${PIPE_ROUNDS}`);
    console.log(row('(a) blueprint pipe node 1 -> node 2', piped));
    console.log(row(`(b) nc over the overlay (${implementation})`, tcp));
    console.log(row('(c) nc between the node namespaces', underlay));
    console.log(row('(d) blueprint pipe, routes without TLS', plain));
    console.log(`${'(e) bare NATS clients, JetStream over the route'.padEnd(44)} ${bareNats.mbPerS.toFixed(1).padStart(7)} MiB/s (${bareNats.seconds.toFixed(3)} s)   first message ${(bareNats.firstUs / 1000).toFixed(2).padStart(4)} ms   median of ${PINGS} ${(bareNats.medianUs / 1000).toFixed(2).padStart(7)} ms (no shell stamps)`);
    console.log(row('(f) Docker alone: attach to attach', dockerAlone));
    console.log(`ratios pipe/tcp: throughput ${(piped.mbPerS / tcp.mbPerS).toFixed(3)}x, first-line latency ${(piped.firstUs / tcp.firstUs).toFixed(1)}x, median latency ${(piped.medianUs / tcp.medianUs).toFixed(1)}x`);
    console.log(`ratios pipe/underlay: throughput ${(piped.mbPerS / underlay.mbPerS).toFixed(3)}x, first-line latency ${(piped.firstUs / underlay.firstUs).toFixed(1)}x, median latency ${(piped.medianUs / underlay.medianUs).toFixed(1)}x`);
    console.log(`median of the rounds' own ratios: throughput a/c ${medianOf(rounds.map((r) => r.piped.mbPerS / r.underlay.mbPerS)).toFixed(3)}x, e/c ${medianOf(rounds.map((r) => r.bareNats.mbPerS / r.underlay.mbPerS)).toFixed(3)}x, a/e ${medianOf(rounds.map((r) => r.piped.mbPerS / r.bareNats.mbPerS)).toFixed(3)}x; first-line latency a/c ${medianOf(rounds.map((r) => r.piped.firstUs / r.underlay.firstUs)).toFixed(1)}x, e/c ${medianOf(rounds.map((r) => r.bareNats.firstUs / r.underlay.firstUs)).toFixed(1)}x; median line a/c ${medianOf(rounds.map((r) => r.piped.medianUs / r.underlay.medianUs)).toFixed(1)}x, e/c ${medianOf(rounds.map((r) => r.bareNats.medianUs / r.underlay.medianUs)).toFixed(1)}x`);
    console.log(`ratios throughput bare NATS/underlay (e/c) ${(bareNats.mbPerS / underlay.mbPerS).toFixed(3)}x, pipe/bare NATS (a/e) ${(piped.mbPerS / bareNats.mbPerS).toFixed(3)}x`);
    console.log(`machine CPU per 64 MiB beyond rest, medians of the rounds: (a) ${medianOf(rounds.map((r) => r.cpuS.a)).toFixed(2)}, (c) ${medianOf(rounds.map((r) => r.cpuS.c)).toFixed(2)}, (e) ${medianOf(rounds.map((r) => r.cpuS.e)).toFixed(2)}, (f) ${medianOf(rounds.map((r) => r.cpuS.f)).toFixed(2)} CPU-s; a pipe of (e) and (f) alone: c/(e+f) ${medianOf(rounds.map((r) => r.cpuS.c / (r.cpuS.e + r.cpuS.f))).toFixed(3)}x of nc; (a) spends a/(e+f) ${medianOf(rounds.map((r) => r.cpuS.a / (r.cpuS.e + r.cpuS.f))).toFixed(2)}x of it`);
    console.log(`ratios route TLS on/off (a/d): throughput ${(piped.mbPerS / plain.mbPerS).toFixed(3)}x, first-line latency ${(piped.firstUs / plain.firstUs).toFixed(2)}x, median latency ${(piped.medianUs / plain.medianUs).toFixed(2)}x`);
  } finally {
    cpu.stop();
    await removeNodeContainers([DOCKER_NODE]).catch((e: unknown) => console.error(`removing (f)'s containers failed: ${String(e)}`));
    await docker.close();
    await rm(base, { recursive: true, force: true });
  }
}

await main();
