// Docker driver benchmark, baseline in the same run (medians of N):
//  (a)  raw `docker run -d zone/busybox sleep 3600`, until it runs (the CLI returns once started)
//  (b)  a signed blueprint submitted to the appliance, until the workload reports running
//  (b') DockerDriver.ensure of the same workload alone, until it reports running
//  (c)  MTTR through the appliance: `docker kill` behind its back -> the workload reports
//       running again (the default backoff: a first restart is immediate), one kill per
//       fresh workload, so each is a first failure; each blueprint is deleted after its
//       kill, so the node runs two workloads (that one and an anchor that keeps the
//       owner's network) rather than a growing number (a pass inspects every workload)
//  (c') the same at the driver level: `docker kill` -> exited event -> ensure -> running:
//       the floor the engine adds its pass to, measured right after each (c) so that both
//       see the same load on a busy machine
// Run: node --import tsx bench/docker.ts [N]
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { GIB } from '../appliance/admission.ts';
import { createAppliance, type ZoneAppliance } from '../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../appliance/config.ts';
import { workloadId } from '../drivers/names.ts';
import { createLogger } from '../appliance/logger.ts';
import type { ZoneEvent } from '../appliance/types.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import type { DriverEvent, WorkloadSpec } from '../drivers/contract.ts';
import { removeOwnerNetworks } from '../drivers/docker/owner-network.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { LABELS } from '../drivers/docker/spec.ts';

const run = promisify(execFile);
const N = Number.parseInt(process.argv[2] ?? '10', 10);
const NODE = `bench${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
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
  return { node: NODE, owner: OWNER, blueprint: 'bench', workload: `w${i}`, id: workloadId(NODE, OWNER, 'bench', `w${i}`), specHash: specHash(definition), definition };
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

/** Resolves at the first appliance event `match` accepts, with a bound. */
function nextZoneEvent(appliance: ZoneAppliance, match: (e: ZoneEvent) => boolean, timeoutMs = 60_000): Promise<ZoneEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error('no matching appliance event within the bound'));
    }, timeoutMs);
    const stop = appliance.onEvent((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      stop();
      resolve(e);
    });
  });
}

/** (c') once: kill the driver's workload i, wait for its exited event, ensure it again. */
async function healByDriver(driver: DockerDriver, i: number): Promise<number> {
  const spec = specOf(i);
  const exited = nextEvent(driver, (e) => e.type === 'exited' && e.id === spec.id);
  const t0 = performance.now();
  await docker.getContainer(spec.id).kill();
  await exited;
  await driver.ensure(spec);
  return performance.now() - t0;
}

/** (b) and (c): through a real appliance with the Docker driver, in a scratch data directory; (c') beside each (c). */
async function measureAppliance(driver: DockerDriver): Promise<{ submit: number[]; heal: number[]; driverHeal: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'zone-bench-docker-'));
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey ?? join(dir, 'operator.key'));
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger: createLogger({ level: 'silent' }),
    drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
    hostCapacity: { cpus: 64, memoryBytes: 64 * GIB, diskBytes: 100 * GIB },
  });
  appliance.start();
  const submit: number[] = [];
  const heal: number[] = [];
  const driverHeal: number[] = [];
  const isRunning = (name: string) => (e: ZoneEvent) => e.blueprint === name && e.workload === 'w' && e.to === 'running';
  const blueprint = (name: string, version = 1) => signBlueprint({
    name, version, owner: operator.publicKey, node: appliance.identity.id,
    workloads: [{ name: 'w', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }],
  } as Blueprint, operator.secretKey);
  try {
    const anchored = nextZoneEvent(appliance, isRunning('anchor'));
    await appliance.submit(blueprint('anchor'));
    await anchored;
    for (let i = 0; i < N; i++) {
      const name = `bench${i}`;
      let running = nextZoneEvent(appliance, isRunning(name));
      let t0 = performance.now();
      await appliance.submit(blueprint(name));
      await running;
      submit.push(performance.now() - t0);

      // Each kill hits a fresh workload: a first failure, restarted at once.
      running = nextZoneEvent(appliance, isRunning(name));
      t0 = performance.now();
      await docker.getContainer(workloadId(appliance.identity.id, operator.publicKey, name, 'w')).kill();
      await running;
      heal.push(performance.now() - t0);
      driverHeal.push(await healByDriver(driver, i));

      const removed = nextZoneEvent(appliance, (e) => e.blueprint === name && e.workload === 'w' && e.to === 'removed');
      await appliance.submit(signBlueprint({ name, version: 2, owner: operator.publicKey, node: appliance.identity.id, delete: true } as Blueprint, operator.secretKey));
      await removed;
    }
  } finally {
    await appliance.close();
    await removeByLabel(`${LABELS.node}=${appliance.identity.id}`);
    await removeOwnerNetworks(docker, [appliance.identity.id]);
    rmSync(dir, { recursive: true, force: true });
  }
  return { submit, heal, driverHeal };
}

/** (a) and (b'); the driver's workloads stay for (c'). */
async function measureRawAndDriver(driver: DockerDriver): Promise<{ raw: number[]; ensure: number[] }> {
  const raw: number[] = [];
  const ensure: number[] = [];
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
    }
  } finally {
    await removeByLabel(RAW_LABEL);
  }
  return { raw, ensure };
}

const driver = new DockerDriver({ node: NODE, dataDir: '/tmp', openSecret: () => '' }, { removeGraceMs: 1000 });
// Keeps the events stream open, so (c') measures healing, not connecting.
const unwatch = driver.watch(() => {});
let low: Awaited<ReturnType<typeof measureRawAndDriver>>;
let high: Awaited<ReturnType<typeof measureAppliance>>;
try {
  low = await measureRawAndDriver(driver);
  high = await measureAppliance(driver);
} finally {
  unwatch();
  await driver.close();
  await removeByLabel(`${LABELS.node}=${NODE}`);
  await removeOwnerNetworks(docker, [NODE]);
}
const a = median(low.raw);
const b = median(high.submit);
console.log(`docker driver benchmark, N=${N}, medians`);
console.log(`(a)  docker run -d zone/busybox sleep 3600, until running:     ${ms(a)}`);
console.log(`(b)  signed blueprint to the appliance, until running:         ${ms(b)}   ratio b/a = ${(b / a).toFixed(2)}`);
console.log(`(b') DockerDriver.ensure alone, until running:                 ${ms(median(low.ensure))}   ratio b'/a = ${(median(low.ensure) / a).toFixed(2)}`);
const c = median(high.heal);
const c1 = median(high.driverHeal);
console.log(`(c)  MTTR through the appliance, docker kill -> running again: median ${ms(c)}, p95 ${ms(p95(high.heal))}   ratio c/c' = ${(c / c1).toFixed(2)}`);
console.log(`(c') driver-level healing, kill -> exited event -> ensure:     median ${ms(c1)}, p95 ${ms(p95(high.driverHeal))}`);
