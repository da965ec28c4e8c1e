// Deploying many containers at once, against raw Docker in the same run (issue 23):
//  (a) raw: N `docker run -d zone/busybox sleep 3600`, P at a time (the engine's step
//      concurrency), until every CLI call returned (it returns once the container runs)
//  (a') the same on a bridge network of its own, with the node's CPU and memory limits
//  (b) a real node (`api/main.ts` in its own process: firewall, drivers, pseudokernel,
//      API): the same N containers in signed blueprints (one up to 250, the schema's bound)
//      PUT to its API, until its status shows all N running
//  (c) with --adopt: `kill -9` of that node once all run, then a new node process on the
//      same data directory, until a marker blueprint submitted to it runs (the pass that
//      made it planned all N); then every container's StartedAt and RestartCount are
//      compared with before (0 restarts is the goal)
//  (d) once all N run: the CPU the node's processes (the appliance and its children:
//      nats-server, the FIFO helper, ...) spend at rest over IDLE_S seconds, per process
//      name, beside dockerd's and containerd's (with their shims) over the same seconds
// Run: node --import tsx bench/deploy.ts [N] [--adopt] [--skip-raw]
// ZONE_BENCH_CPU_PROF=DIR runs the node under --cpu-prof (written when it stops).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pLimit from 'p-limit';
import { OPERATOR_KEY_FILE } from '../appliance/config.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { removeOwnerNetworks } from '../drivers/docker/owner-network.ts';
import { LABELS } from '../drivers/docker/spec.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';
import { waitFor } from '../test/helpers/wait.ts';
import { processStat, processStats } from './machine-cpu.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const N = Number.parseInt(args.find((a) => /^\d+$/.test(a)) ?? '100', 10);
const ADOPT = args.includes('--adopt');
const SKIP_RAW = args.includes('--skip-raw');
const PARALLEL = 8; // the reconciler's default step concurrency
const IDLE_S = 20;
const RAW_LABEL = `zone-bench-deploy=${process.pid}`;
const docker = new Docker();
const root = new URL('..', import.meta.url).pathname;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function removeByLabel(label: string): Promise<void> {
  const found = await docker.listContainers({ all: true, filters: { label: [label] } });
  const limit = pLimit(PARALLEL);
  await Promise.all(found.map((c) => limit(() => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {}))));
}

/** (a), or with `shaped` (a'): on a bridge network of its own, with the node's CPU and memory limits, as the node makes them (without /zone). */
async function raw(shaped = false): Promise<number> {
  const limit = pLimit(PARALLEL);
  const network = `zone-bench-deploy-${process.pid}`;
  if (shaped) await run('docker', ['network', 'create', network]);
  const options = shaped ? ['--network', network, '--memory', '8m', '--cpus', '0.01'] : [];
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: N }, () => limit(() => run('docker', ['run', '-d', '--label', RAW_LABEL, ...options, 'zone/busybox', 'sleep', '3600']))));
    return performance.now() - t0;
  } finally {
    await removeByLabel(RAW_LABEL);
    // dockerd may hold a removed container's endpoint a moment longer ("has active endpoints"),
    // and Docker 20.10 at times for good: that network is left, said, not the benchmark's failure.
    if (shaped) {
      await waitFor(() => run('docker', ['network', 'rm', network]).then(() => true, () => false), { what: `network ${network} removed`, timeoutMs: 30_000, intervalMs: 500 })
        .catch((err: unknown) => console.error(`warning: ${String(err)}`));
    }
  }
}

interface Node { child: ChildProcess; url: string; exited: Promise<void> }

async function startNode(dataDir: string, ports: { api: number; nats: number }): Promise<Node> {
  const prof = process.env.ZONE_BENCH_CPU_PROF;
  const child = spawn(process.execPath, ['--import', 'tsx', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), 'api/main.ts'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ZONE_DATA_DIR: dataDir, ZONE_LISTEN: `127.0.0.1:${ports.api}`, ZONE_NATS_LISTEN: `127.0.0.1:${ports.nats}`, ZONE_LOG_LEVEL: 'warn' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += String(chunk);
      if (out.includes('listening on')) resolve();
    });
    void exited.then(() => reject(new Error(`the node exited before it listened: ${out}`)));
  });
  return { child, url: `http://127.0.0.1:${ports.api}`, exited };
}

async function stopNode(node: Node, signal: NodeJS.Signals): Promise<void> {
  node.child.kill(signal);
  await node.exited;
}

interface WorkloadRow { workload: string; state: string; restarts: number }

/** The workloads of the blueprints whose names start with `prefix`. */
async function workloadsOf(url: string, prefix: string): Promise<WorkloadRow[]> {
  const res = await fetch(`${url}/v1/blueprints`);
  if (res.status !== 200) return [];
  const { blueprints } = (await res.json()) as { blueprints: { name: string; workloads: WorkloadRow[] }[] };
  return blueprints.filter((b) => b.name.startsWith(prefix)).flatMap((b) => b.workloads);
}

/** Polls until `count` workloads of those blueprints run; the bound is generous (1,000 containers on a shared machine). */
async function untilAllRunning(url: string, prefix = 'deploy', count = N, boundMs = 30 * 60_000): Promise<WorkloadRow[]> {
  const start = Date.now();
  for (;;) {
    const rows = await workloadsOf(url, prefix);
    if (rows.length === count && rows.every((w) => w.state === 'running')) return rows;
    if (Date.now() - start > boundMs) throw new Error(`not all running within ${boundMs} ms: ${JSON.stringify(rows.filter((w) => w.state !== 'running').slice(0, 3))}`);
    await new Promise((r) => setTimeout(r, count > 100 ? 250 : 50));
  }
}

/** A blueprint holds at most this many workloads (the schema's bound): more are spread over several. */
const PER_BLUEPRINT = 250;

/** The processes whose command line names `dir` (a nats-server a killed node left behind). */
function processesUsing(dir: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir) ? [Number(p)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** Each of the node's containers: its StartedAt and RestartCount. */
async function containerStarts(node: string): Promise<Map<string, string>> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${node}`] } });
  const limit = pLimit(16);
  const starts = await Promise.all(found.map((c) => limit(async () => {
    const info = await docker.getContainer(c.Id).inspect();
    return [c.Id, `${info.State.StartedAt} ${info.RestartCount} ${info.State.Running}`] as const;
  })));
  return new Map(starts);
}

/** CPU seconds each of `pids` has used, by process name. */
function cpuByName(pids: number[], names: Map<number, string>): Map<string, number> {
  const seconds = new Map<string, number>();
  for (const pid of pids) {
    const stat = processStat(pid);
    const name = names.get(pid)!;
    if (stat) seconds.set(name, (seconds.get(name) ?? 0) + stat.cpuMs / 1000);
  }
  return seconds;
}

/** (d): the share of one core each process name of the node's tree, and Docker's, used over IDLE_S at rest. */
async function atRest(nodePid: number): Promise<string> {
  const table = processStats();
  const tree = new Set([nodePid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, { ppid }] of table) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const docker = [...table].filter(([, { comm }]) => /^(dockerd|containerd|containerd-shim.*)$/.test(comm)).map(([pid]) => pid);
  const names = new Map([...table].map(([pid, { comm }]) => [pid, comm.startsWith('containerd-shim') ? 'containerd-shims' : comm]));
  const pids = [...tree, ...docker];
  const before = cpuByName(pids, names);
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const after = cpuByName(pids, names);
  const share = (name: string) => `${name} ${(((after.get(name) ?? 0) - (before.get(name) ?? 0)) / IDLE_S * 100).toFixed(1)} %`;
  const treeNames = [...new Set([...tree].map((pid) => names.get(pid)!))];
  return `node: ${treeNames.map(share).join(', ')}; Docker: ${['dockerd', 'containerd', 'containerd-shims'].map(share).join(', ')}`;
}

async function deploy(): Promise<{ deploy: number; rest: string; adopt?: { ms: number; restarted: number; missing: number; restarts: number } }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zone-bench-deploy-'));
  // 1,000 containers of 0.01 CPU (the least Docker takes) are 10 CPUs: more than the default overcommit of 2 cores.
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ overcommit: { cpu: 16 } }));
  const [api = 0, nats = 0] = await freeLoopbackPorts(2);
  let node = await startNode(dataDir, { api, nats });
  let id = '';
  try {
    id = ((await (await fetch(`${node.url}/v1/node`)).json()) as { id: string }).id;
    const operator = readSigningKey(join(dataDir, OPERATOR_KEY_FILE));
    const bps = Array.from({ length: Math.ceil(N / PER_BLUEPRINT) }, (_, b) => signBlueprint({
      name: `deploy${b}`, version: 1, owner: operator.publicKey, node: id,
      workloads: Array.from({ length: Math.min(PER_BLUEPRINT, N - b * PER_BLUEPRINT) }, (_, i) => ({
        name: `w${i}`, kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'], resources: { memory: '8Mi', cpus: 0.01 },
      })),
    } as Blueprint, operator.secretKey));
    const t0 = performance.now();
    for (const bp of bps) {
      const put = await fetch(`${node.url}/v1/blueprints/${bp.name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
      if (put.status !== 202) throw new Error(`submit: ${put.status} ${await put.text()}`);
    }
    await untilAllRunning(node.url);
    const deployed = performance.now() - t0;
    console.log(`(b) deployed in ${s(deployed)}`);
    const rest = await atRest(node.child.pid!);
    if (!ADOPT) return { deploy: deployed, rest };

    const before = await containerStarts(id);
    await stopNode(node, 'SIGKILL');
    const t1 = performance.now();
    node = await startNode(dataDir, { api, nats });
    // The status is read from the store at once; a pass is what adopts. Passes are whole (each
    // lists every workload) and never overlap: once a marker blueprint submitted now runs, the
    // pass that made it has planned every one of the N too.
    const marker = signBlueprint({
      name: 'marker', version: 1, owner: operator.publicKey, node: id, workloads: [{ name: 'm', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }],
    } as Blueprint, operator.secretKey);
    const put2 = await fetch(`${node.url}/v1/blueprints/marker`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(marker) });
    if (put2.status !== 202) throw new Error(`submit marker: ${put2.status} ${await put2.text()}`);
    await untilAllRunning(node.url, 'marker', 1);
    const st = await untilAllRunning(node.url);
    const adopted = performance.now() - t1;
    const after = await containerStarts(id);
    const restarted = [...before].filter(([cid, start]) => after.has(cid) && after.get(cid) !== start).length;
    const missing = [...before.keys()].filter((cid) => !after.has(cid)).length;
    const restarts = st.reduce((sum, w) => sum + w.restarts, 0);
    return { deploy: deployed, rest, adopt: { ms: adopted, restarted, missing, restarts } };
  } finally {
    await stopNode(node, 'SIGTERM');
    if (id) {
      await removeByLabel(`${LABELS.node}=${id}`);
      await removeOwnerNetworks(docker, [id]);
    }
    // A node that did not stop in time leaves DATA/zone mounted (and the /zone mounts under it),
    // and a killed one its nats-server.
    await run('umount', ['-l', join(dataDir, 'zone')]).catch(() => {});
    for (const pid of processesUsing(dataDir)) process.kill(pid, 'SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const a = SKIP_RAW ? null : await raw();
if (a !== null) console.log(`(a) raw in ${s(a)}`);
const shapedRaw = SKIP_RAW ? null : await raw(true);
const b = await deploy();
const bpCount = Math.ceil(N / PER_BLUEPRINT);
console.log(`deploy benchmark, N=${N}, ${PARALLEL} at a time`);
if (a !== null) console.log(`(a) raw docker run -d x${N}:                    ${s(a)}`);
if (shapedRaw !== null) console.log(`(a') the same on a bridge of its own, with limits: ${s(shapedRaw)}   ratio a'/a = ${(shapedRaw / a!).toFixed(2)}`);
console.log(`(b) ${bpCount} blueprint(s) through the node, all running: ${s(b.deploy)}${a !== null ? `   ratio b/a = ${(b.deploy / a).toFixed(2)}, b/a' = ${(b.deploy / shapedRaw!).toFixed(2)}` : ''}`);
console.log(`(d) at rest with ${N} running, share of one core over ${IDLE_S} s: ${b.rest}`);
if (b.adopt) console.log(`(c) kill -9, new node until adopted:             ${s(b.adopt.ms)}   containers restarted: ${b.adopt.restarted}, missing: ${b.adopt.missing}; restarts the node counts: ${b.adopt.restarts}`);
