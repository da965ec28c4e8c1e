// Docker driver benchmark, baseline in the same run:
//  (a)  raw `docker run -d zone/busybox sleep 3600`, until it runs (the CLI returns once started)
//  (b') DockerDriver.ensure of the same workload, until it reports running
//  (c') self-healing at the driver level: `docker kill` -> exited event -> ensure -> running
// Run: node --import tsx bench/docker.ts [N]
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import type { DriverEvent, WorkloadSpec } from '../drivers/contract.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { LABELS } from '../drivers/docker/spec.ts';

const run = promisify(execFile);
const N = Number.parseInt(process.argv[2] ?? '10', 10);
const NODE = `bench${process.pid}`;
const RAW_LABEL = `zone-bench=${NODE}`;
const docker = new Docker();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}
function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? 0;
}
const ms = (x: number) => `${x.toFixed(1)} ms`;

function specOf(i: number): WorkloadSpec {
  const definition = normalizeWorkload({ name: `w${i}`, kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] });
  return { node: NODE, owner: `ed25519:${Buffer.alloc(32, 9).toString('base64')}`, blueprint: 'bench', workload: `w${i}`, id: `zone-bench-w${i}-${NODE}`, specHash: specHash(definition), definition };
}

async function removeByLabel(label: string): Promise<void> {
  const found = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
}

/** Waits for the first event `match` accepts, with a bound. */
function nextEvent(driver: DockerDriver, match: (e: DriverEvent) => boolean, timeoutMs = 30_000): Promise<DriverEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error('no matching event within the bound'));
    }, timeoutMs);
    const stop = driver.watch((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      stop();
      resolve(e);
    });
  });
}

async function main(): Promise<void> {
  const driver = new DockerDriver({ node: NODE, dataDir: '/tmp', openSecret: () => '' }, { removeGraceMs: 1000 });
  const raw: number[] = [];
  const ensure: number[] = [];
  const heal: number[] = [];
  // Keeps the events stream open, so (c') measures healing, not connecting.
  const unwatch = driver.watch(() => {});
  try {
    for (let i = 0; i < N; i++) {
      let t0 = performance.now();
      const { stdout } = await run('docker', ['run', '-d', '--label', RAW_LABEL, 'zone/busybox', 'sleep', '3600']);
      const info = await docker.getContainer(stdout.trim()).inspect();
      if (!info.State.Running) throw new Error('docker run -d returned before the container ran');
      raw.push(performance.now() - t0);

      const spec = specOf(i);
      t0 = performance.now();
      const observed = await driver.ensure(spec);
      if (observed.state !== 'running') throw new Error(`ensure returned ${observed.state}`);
      ensure.push(performance.now() - t0);

      const exited = nextEvent(driver, (e) => e.type === 'exited' && e.id === spec.id);
      t0 = performance.now();
      await docker.getContainer(spec.id).kill();
      await exited;
      await driver.ensure(spec);
      heal.push(performance.now() - t0);
    }
  } finally {
    unwatch();
    await driver.close();
    await removeByLabel(RAW_LABEL);
    await removeByLabel(`${LABELS.node}=${NODE}`);
  }
  const a = median(raw);
  const b = median(ensure);
  console.log(`docker driver benchmark, N=${N} (median)`);
  console.log(`(a)  docker run -d zone/busybox sleep 3600, until running: ${ms(a)}`);
  console.log(`(b') DockerDriver.ensure, until running:                   ${ms(b)}   ratio b'/a = ${(b / a).toFixed(2)}`);
  console.log(`(c') driver-level healing, kill -> running again:          median ${ms(median(heal))}, p95 ${ms(p95(heal))}`);
  console.log('(b) and (c) through the appliance need the appliance core: not measured here.');
}

await main();
