// A full disk: the node's data dir is a small tmpfs filled up with a file. Changes are
// refused with 507 and change nothing (neither the store nor the engine's memory),
// reads keep working, and once space returns the next submit is applied; after a
// restart the store and the engine's memory agree.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { workloadId } from '../../drivers/names.ts';
import { createLogger } from '../../appliance/logger.ts';
import type { WorkloadRecord } from '../../appliance/store.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { buildServer } from '../../api/server.ts';
import { FakeDriver } from '../../drivers/fake/driver.ts';
import { call } from '../api/node.ts';
import { waitFor } from '../helpers/wait.ts';

const base = mkdtempSync(join(tmpdir(), 'zone-disk-full-'));
const dataDir = join(base, 'data');
mkdirSync(dataDir);
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0711', 'zone-disk-full', dataDir]);
/** Whatever runs is stopped before the data dir is unmounted. */
const running = new Set<() => Promise<void>>();
t.teardown(async () => {
  for (const stop of running) await stop();
  // Lazily when something failed half-way and still holds a file there.
  try {
    execFileSync('umount', [dataDir]);
  } catch {
    execFileSync('umount', ['-l', dataDir]);
  }
  rmSync(base, { recursive: true, force: true });
});

const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dataDir }, cwd: base });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const driver = new FakeDriver();
let log = '';
const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });

async function start(): Promise<{ appliance: ZoneAppliance; url: string; stop: () => Promise<void> }> {
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger, drivers: () => [driver],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 50, maxMs: 500, stableMs: 60_000, crashloopAfter: 3 },
  });
  appliance.start();
  const server = await buildServer(appliance, { logger });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const stop = async () => {
    running.delete(stop);
    await server.close();
    await appliance.close();
  };
  running.add(stop);
  return { appliance, url, stop };
}

const sign = (node: string, bp: Omit<Blueprint, 'owner' | 'node'>) =>
  signBlueprint({ owner: operator.publicKey, node, ...bp } as Blueprint, operator.secretKey);
const box = (name: string) => ({ name, kind: 'container' as const, image: 'zone/busybox' });

/** The workload rows on disk, read beside the appliance (a read needs no space). */
function storedRecords(): Record<string, Pick<WorkloadRecord, 'state' | 'restarts'>> {
  const db = new Database(join(dataDir, 'zone.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT id, state, restarts FROM workloads').all() as { id: string; state: WorkloadRecord['state']; restarts: number }[];
    return Object.fromEntries(rows.map((r) => [r.id, { state: r.state, restarts: r.restarts }]));
  } finally {
    db.close();
  }
}
const memoryRecords = (a: ZoneAppliance) =>
  Object.fromEntries([...a.reconciler.statuses().values()].map((r) => [r.id, { state: r.state, restarts: r.restarts }]));

/** Fills the file system with one file; returns its path. */
function fill(): string {
  const filler = join(dataDir, 'filler');
  try {
    writeFileSync(filler, Buffer.alloc(8 << 20));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  return filler;
}

t.test('a full data dir refuses changes with 507, keeps serving reads, loses nothing and applies the next submit once space returns', async (t) => {
  const first = await start();
  const node = first.appliance.identity.id;
  const put = (bp: Blueprint) => call(`${first.url}/v1/blueprints/${bp.name}`, { method: 'PUT', body: bp });
  const running = (name: string, workload: string) => () => first.appliance.getBlueprint(name)?.workloads.find((w) => w.workload === workload)?.state === 'running';

  t.equal((await put(sign(node, { name: 'before', version: 1, workloads: [box('w')] }))).status, 202);
  await waitFor(running('before', 'w'), { timeoutMs: 10_000, what: 'before/w running' });
  const eventsBefore = first.appliance.events({ limit: 10_000 }).length;

  const filler = fill();
  const refused = await put(sign(node, { name: 'during', version: 1, workloads: [box('w')] }));
  t.equal(refused.status, 507, 'a submit on a full disk answers 507');
  t.match(refused.json, { error: 'NO_SPACE', message: /disk is full; nothing was changed/ });
  const listed = (await call(`${first.url}/v1/blueprints`)).json as { blueprints: { name: string }[] };
  t.same(listed.blueprints.map((b) => b.name), ['before'], 'reads still answer, without the refused blueprint');
  t.equal((await call(`${first.url}/v1/blueprints/during`)).status, 404);
  t.equal((await call(`${first.url}/v1/events?follow=false`)).status, 200, 'the event log still reads');
  t.equal((await call(`${first.url}/v1/node`)).status, 200);

  // The workload crashes while nothing can be recorded: the engine's memory stays what the store says.
  const id = workloadId(node, operator.publicKey, 'before', 'w');
  driver.crash(id);
  // The first restart is immediate: its step (or the pass) is refused by the store before the driver is asked.
  await waitFor(() => /reconcile (pass|step) stopped: the store cannot record it/.test(log), { timeoutMs: 10_000, what: 'a pass or a step refused by the store' });
  t.same(memoryRecords(first.appliance), storedRecords(), 'memory and store agree while the disk is full');
  t.match(storedRecords()[id], { state: 'running', restarts: 0 });
  t.equal(first.appliance.events({ limit: 10_000 }).length, eventsBefore, 'no event was stored (or told) for a change that was not recorded');
  t.equal((await call(`${first.url}/healthz`)).status, 200, 'the node still serves');

  rmSync(filler);
  t.equal((await put(sign(node, { name: 'after', version: 1, workloads: [box('w')] }))).status, 202, 'once space returns, the next submit is accepted');
  await waitFor(running('after', 'w'), { timeoutMs: 10_000, what: 'after/w running' });
  await waitFor(() => first.appliance.getBlueprint('before')?.workloads[0]?.restarts === 1 && running('before', 'w')(), { timeoutMs: 10_000, what: 'the crashed workload restarted' });
  t.equal(first.appliance.listBlueprints().map((b) => b.name).join(','), 'after,before', 'nothing accepted is lost');
  await first.appliance.reconciler.idle();
  const memory = memoryRecords(first.appliance);
  await first.stop();

  const second = await start();
  t.same(memoryRecords(second.appliance), memory, 'after a restart the engine remembers what it knew');
  t.same(storedRecords(), memory, 'and the store holds the same');
  t.same(second.appliance.listBlueprints().map((b) => [b.name, b.workloads.map((w) => w.state)]), [['after', ['running']], ['before', ['running']]]);
  await second.stop();
});
