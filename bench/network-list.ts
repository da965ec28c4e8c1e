// What the WireGuard driver's part of a reconcile pass costs the appliance's event loop
// (issue 23): every pass asks the network driver for its networks (`list()`). Before,
// that was a full look at each network, four child processes (`ip` three times, `wg`);
// now it answers from its last full look while that holds. One network of wireguard-go
// with two peers in a namespace of its own, this process holding a heap of an
// appliance's size (a spawn forks this process: its cost grows with what it maps).
// In turns, 3 rounds of PASSES passes each:
// (f) the baseline: a full look at the network per pass (`inspect`, what `list()` was);
// (l) `list()` per pass;
// (0) nothing per pass: the floor (the timer itself, garbage collections of the heap,
//     this process waiting for a core on a loaded machine).
// Each: the event loop's stalls (a 1 ms timer's gaps beyond 5 ms, summed, and
// monitorEventLoopDelay's max and p99), this process's CPU, per pass.
// Run: node --import tsx bench/network-list.ts
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { generateBoxKeyPair, openSealed } from '../blueprints/seal.ts';
import { planGrid } from '../cli/grid-plan.ts';
import type { NetworkSpec } from '../drivers/contract.ts';
import { networkId } from '../drivers/names.ts';
import { WireguardDriver } from '../drivers/wireguard/driver.ts';

const run = promisify(execFile);
const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1))).stdout;
const ROUNDS = 3;
const PASSES = 20;
const PASS_GAP_MS = 200;
const UNDERLAY = `nlb${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
/** Roughly an appliance's resident memory in a two-node cluster (230-260 MB RSS), in MiB. */
const BALLAST_MB = 160;

interface Cost { stallMs: number; maxMs: number; p99Ms: number; cpuMs: number }

/** Runs `pass` PASSES times, PASS_GAP_MS apart, and measures the event loop meanwhile. */
async function measure(pass: () => Promise<unknown>): Promise<Cost> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let stallMs = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    if (now - last > 5) stallMs += now - last - 1;
    last = now;
  }, 1);
  histogram.enable();
  const cpu = process.cpuUsage();
  for (let i = 0; i < PASSES; i++) {
    await pass();
    await new Promise((resolve) => setTimeout(resolve, PASS_GAP_MS));
  }
  const used = process.cpuUsage(cpu);
  histogram.disable();
  clearInterval(ticker);
  return { stallMs: stallMs / PASSES, maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6, cpuMs: (used.user + used.system) / 1000 / PASSES };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ballast = Array.from({ length: BALLAST_MB }, (_, i) => Array.from({ length: 16_384 }, (_, j) => ({ i, j, s: `${i}:${j}` })));

const dir = await mkdtemp(join(tmpdir(), 'network-list-'));
const boxes = [generateBoxKeyPair(), generateBoxKeyPair(), generateBoxKeyPair()];
const grid = planGrid({
  network: 'mesh', owner: OWNER, blueprint: 'bench', ipRange: '10.217.0.0/16',
  nodes: boxes.map((box, i) => ({ id: `nlb${i}`, boxKey: box.publicKey, endpoint: `192.168.217.${i + 1}:51820` })),
});
const identity = { node: 'nlb0', owner: OWNER, blueprint: 'bench', network: 'mesh' };
const spec: NetworkSpec = { ...identity, id: networkId(identity), definition: grid[0]!.network };
const driver = new WireguardDriver(
  { node: 'nlb0', dataDir: dir, openSecret: (sealed, place) => openSealed(sealed, boxes[0]!.secretKey, { ...place, node: 'nlb0' }) },
  { underlayNamespace: UNDERLAY },
);
try {
  await sh('ip', 'netns', 'add', UNDERLAY);
  await sh('ip', '-n', UNDERLAY, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1'); // no dummy module here
  await sh('ip', '-n', UNDERLAY, 'addr', 'add', '192.168.217.1/24', 'dev', 'eth0');
  for (const link of ['eth0', 'eth1']) await sh('ip', '-n', UNDERLAY, 'link', 'set', link, 'up');
  if (!(await driver.ensure(spec)).up) throw new Error('the network did not come up');
  const full: Cost[] = [];
  const listed: Cost[] = [];
  const idle: Cost[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    full.push(await measure(() => driver.inspect(spec.id)));
    listed.push(await measure(() => driver.list()));
    idle.push(await measure(() => Promise.resolve()));
    const [f, l, o] = [full.at(-1)!, listed.at(-1)!, idle.at(-1)!];
    console.log(`round ${round}: stalls per pass (f) ${f.stallMs.toFixed(1)}, (l) ${l.stallMs.toFixed(1)}, (0) ${o.stallMs.toFixed(1)} ms; CPU per pass (f) ${f.cpuMs.toFixed(1)}, (l) ${l.cpuMs.toFixed(1)}, (0) ${o.cpuMs.toFixed(1)} ms`);
  }
  const row = (name: string, c: Cost[]) => `| ${name} | ${median(c.map((x) => x.stallMs)).toFixed(1)} ms | ${median(c.map((x) => x.maxMs)).toFixed(1)} ms | ${median(c.map((x) => x.p99Ms)).toFixed(1)} ms | ${median(c.map((x) => x.cpuMs)).toFixed(1)} ms |`;
  console.log(`\n${PASSES} passes ${PASS_GAP_MS} ms apart per round, medians of ${ROUNDS} rounds, heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB, load ${(await sh('cat', '/proc/loadavg')).split(' ').slice(0, 3).join(' ')}, ballast ${ballast.length} MiB`);
  console.log('| per pass | event loop stalled | max delay | p99 delay | CPU |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(row('(f) a full look (ip x3, wg): the old list()', full));
  console.log(row('(l) list()', listed));
  console.log(row('(0) nothing', idle));
} finally {
  await driver.remove(spec.id).catch((e: unknown) => console.error(`removing the network: ${(e as Error).message}`));
  await sh('ip', 'netns', 'del', UNDERLAY).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
