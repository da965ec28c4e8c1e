// One full reconcile pass with the fake driver for 10 … 10000 workloads (µs per
// workload, should stay flat as N grows), against a baseline measured in the same
// run: a bare loop over the same desired and observed objects that only compares
// spec hashes. Then the idle CPU of the loop. Run: node --import tsx bench/reconcile.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import type { Blueprint } from '../blueprints/schema.ts';
import { FakeDriver } from '../drivers/fake/driver.ts';
import { desiredWorkloads } from '../appliance/engine/desired.ts';
import { Reconciler } from '../appliance/engine/reconciler.ts';
import { EventLog } from '../appliance/events.ts';
import { Store } from '../appliance/store.ts';

const NODE = 'benchnode';
const OWNER = 'ed25519:' + 'B'.repeat(43) + '=';
const PER_BLUEPRINT = 100;

function setup(n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'zone-bench-reconcile-'));
  const store = new Store(join(dir, 'zone.db'));
  const logger = pino({ level: 'silent' });
  const driver = new FakeDriver();
  const engine = new Reconciler({ node: NODE, store, drivers: new Map([['container', driver]]), events: new EventLog(store, logger), logger, concurrency: 64, resyncMs: 30_000 });
  store.transaction(() => {
    for (let b = 0; b * PER_BLUEPRINT < n; b++) {
      const workloads = Array.from({ length: Math.min(PER_BLUEPRINT, n - b * PER_BLUEPRINT) }, (_, i) => ({
        name: `w${i}`, kind: 'container' as const, image: 'zone/busybox', command: ['sh', '-c', 'sleep 1000'], resources: { memory: '16Mi', cpus: 0.1 },
      }));
      store.putBlueprint({ name: `bp${b}`, version: 1, owner: OWNER, node: NODE, workloads } satisfies Blueprint, new Date().toISOString());
    }
  });
  return { store, driver, engine, close: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** Median time of `runs` calls of `fn`, in ms. */
async function median(runs: number, fn: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const fmt = (n: number, d = 1) => n.toFixed(d).padStart(9);
console.log('workloads   cold apply ms   pass ms   µs/workload   baseline µs/workload   ratio');
for (const n of [10, 100, 1000, 10_000]) {
  const { store, driver, engine, close } = setup(n);
  const coldStart = process.hrtime.bigint();
  await engine.pass();
  await engine.idle();
  const coldMs = Number(process.hrtime.bigint() - coldStart) / 1e6;
  if (driver.snapshot().length !== n) throw new Error(`expected ${n} workloads, the fake engine has ${driver.snapshot().length}`);
  const runs = n >= 10_000 ? 5 : 20;
  const passMs = await median(runs, () => engine.pass());
  if (driver.calls.ensure !== n) throw new Error('a converged pass must not call ensure');
  // Baseline: the same desired and observed objects, compared in a bare loop.
  const desired = desiredWorkloads(NODE, store.blueprints());
  const observed = new Map(driver.snapshot().map((w) => [w.id, w]));
  const baseMs = await median(runs * 10, () => {
    let same = 0;
    for (const d of desired) if (observed.get(d.id)?.specHash === d.specHash) same++;
    return same;
  });
  console.log(`${String(n).padStart(9)} ${fmt(coldMs)}       ${fmt(passMs, 2)} ${fmt((passMs * 1000) / n, 2)}     ${fmt((baseMs * 1000) / n, 3)}            ${fmt(passMs / baseMs, 0)}x`);
  await engine.stop();
  close();
}

// Idle CPU: 1000 converged workloads, the loop started (events + resync timer), nothing happening.
{
  const { engine, close } = setup(1000);
  engine.start();
  await engine.idle();
  await sleep(1000); // let the garbage of the cold apply be collected before measuring
  const idleSeconds = 5;
  const before = process.cpuUsage();
  await sleep(idleSeconds * 1000);
  const used = process.cpuUsage(before);
  const ms = (used.user + used.system) / 1000;
  console.log(`idle loop, 1000 workloads, ${idleSeconds} s: ${ms.toFixed(1)} ms CPU (${((ms / (idleSeconds * 1000)) * 100).toFixed(3)} % of one core)`);
  // Baseline: the same process with nothing started.
  await engine.stop();
  const bare = process.cpuUsage();
  await sleep(idleSeconds * 1000);
  const bareUsed = process.cpuUsage(bare);
  const bareMs = (bareUsed.user + bareUsed.system) / 1000;
  console.log(`bare process, ${idleSeconds} s: ${bareMs.toFixed(1)} ms CPU; ratio ${(ms / Math.max(bareMs, 0.001)).toFixed(1)}x`);
  close();
}
