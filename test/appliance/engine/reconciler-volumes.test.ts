// The reconciler's volume steps against an in-memory provider and the fake driver: the
// order of the graph (volume before workload, workload removal before volume delete)
// and a refusal told once. The provider with real ext4 and qcow2 is tested in
// test/drivers/volumes, the whole appliance with docker in test/appliance/volumes.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import pino from 'pino';
import type { Blueprint } from '../../../blueprints/schema.ts';
import type { ObservedVolume, ObservedWorkload, VolumeProvider, VolumeSpec, WorkloadSpec } from '../../../drivers/contract.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { volumeId, workloadId } from '../../../drivers/names.ts';
import { Reconciler } from '../../../appliance/engine/reconciler.ts';
import { EventLog } from '../../../appliance/events.ts';
import { Store } from '../../../appliance/store.ts';
import type { ZoneEvent } from '../../../appliance/types.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = 'volumestest';
const OWNER = 'ed25519:' + 'V'.repeat(43) + '=';

/** What happened, in order, across the driver and the provider. */
type Log = string[];

class MemoryVolumes implements VolumeProvider {
  readonly kind = 'volume';
  readonly volumes = new Map<string, ObservedVolume>();
  lists = 0;
  constructor(private readonly log: Log) {}
  async fingerprint() {
    return { kind: 'volume', available: true, details: {} };
  }
  async ensure(spec: VolumeSpec): Promise<ObservedVolume> {
    const v: ObservedVolume = { ...spec, path: `/volumes/${spec.volume}`, releasedAt: null };
    this.volumes.set(spec.id, v);
    this.log.push(`ensure volume ${spec.volume}`);
    return v;
  }
  async release(id: string, at: Date): Promise<void> {
    const v = this.volumes.get(id);
    if (v) this.volumes.set(id, { ...v, releasedAt: at.toISOString() });
  }
  async inspect(id: string) {
    return this.volumes.get(id) ?? null;
  }
  async list() {
    this.lists++;
    return [...this.volumes.values()];
  }
  async remove(id: string): Promise<void> {
    this.log.push(`delete volume ${this.volumes.get(id)?.volume}`);
    this.volumes.delete(id);
  }
  async usage() {
    return 0;
  }
}

class LoggingDriver extends FakeDriver {
  readonly specs: WorkloadSpec[] = [];
  constructor(private readonly log: Log, kind = 'container') {
    super({ kind });
  }
  override async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    this.specs.push(spec);
    this.log.push(`ensure workload ${spec.workload}`);
    return super.ensure(spec);
  }
  override async remove(id: string): Promise<void> {
    this.log.push('remove workload');
    return super.remove(id);
  }
  async growDisk(id: string, path: string, sizeBytes: number): Promise<void> {
    this.log.push(`grow disk ${path} to ${sizeBytes} of ${this.specs.find((s) => s.id === id)?.workload}`);
  }
}

function harness(t: Test, kind = 'container') {
  const dir = mkdtempSync(join(tmpdir(), 'zone-reconciler-volumes-'));
  const store = new Store(join(dir, 'zone.db'));
  const logger = pino({ level: 'silent' });
  const events = new EventLog(store, logger);
  const seen: ZoneEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const log: Log = [];
  const driver = new LoggingDriver(log, kind);
  const volumes = new MemoryVolumes(log);
  const engine = new Reconciler({
    node: NODE, store, drivers: new Map([[kind, driver]]), events, logger, resyncMs: 60_000,
    volumes: { provider: volumes, retentionMs: 0 },
  });
  t.teardown(async () => {
    await engine.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const apply = (bp: Blueprint) => {
    store.putBlueprint(bp, new Date().toISOString());
    engine.wake();
  };
  const status = (w: string) => engine.statuses().get(workloadId(NODE, OWNER, 'notes', w));
  return { engine, driver, volumes, log, seen, apply, status };
}

const notes = (version: number, extra: Partial<Blueprint> = {}): Blueprint => ({
  name: 'notes', version, owner: OWNER, node: NODE,
  volumes: [{ name: 'db', size: '64Mi' }],
  workloads: [{ name: 'app', kind: 'container', image: 'zone/busybox', mounts: [{ volume: 'db', target: '/data' }] }],
  ...extra,
});

t.test('a volume is made before the workload that mounts it, which gets its path; a tombstone removes the workload before the volume', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(notes(1));
  await waitFor(() => h.status('app')?.state === 'running', { timeoutMs: 5000, what: 'app running' });
  t.same(h.log.slice(0, 2), ['ensure volume db', 'ensure workload app']);
  t.same(h.driver.specs[0]?.volumePaths, { db: '/volumes/db' });
  t.ok(h.seen.some((e) => e.to === 'volume db: created'), 'the creation is an event');

  h.apply({ ...notes(2), workloads: [], volumes: [] });
  await waitFor(() => h.volumes.volumes.size === 0, { timeoutMs: 5000, what: 'volume deleted (retention 0)' });
  await h.engine.idle();
  const removal = h.log.indexOf('remove workload');
  t.ok(removal >= 0 && removal < h.log.indexOf('delete volume db'), `the workload is removed before its volume is deleted: ${h.log.join(', ')}`);
  t.same(h.seen.filter((e) => e.to.startsWith('volume db')).map((e) => e.to), ['volume db: created', 'volume db: released', 'volume db: deleted']);
});

t.test('a change the plan refuses is told once, fails the workload naming the volume, and passes do not spin', async (t) => {
  const h = harness(t);
  const spec: VolumeSpec = { node: NODE, owner: OWNER, blueprint: 'notes', volume: 'db', id: '', kind: 'filesystem', sizeBytes: 128 * 1024 * 1024 };
  await h.volumes.ensure({ ...spec, id: volumeId(NODE, OWNER, 'notes', 'db') });
  h.log.length = 0;
  h.engine.start();
  h.apply(notes(1));
  await waitFor(() => h.status('app')?.state === 'failed', { timeoutMs: 5000, what: 'app failed' });
  t.match(h.status('app')?.lastError, /volumes\.db/, 'the error names the volume');
  await h.engine.idle();
  const lists = h.volumes.lists;
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.ok(h.volumes.lists - lists <= 2, `no pass spins on a told refusal (${h.volumes.lists - lists} listings in 300 ms)`);
  t.same(h.seen.filter((e) => e.to.startsWith('volume db')).map((e) => e.to), ['volume db: released', 'volume db: refused'], 'the refusal is told once (the volume was released by the first pass, before the blueprint)');
  t.equal(h.driver.specs.length, 0, 'the workload is never made without its volume');
});

t.test('a block volume that grows while its VM runs: the VM\'s driver grows it live first, and the VM is not replaced', async (t) => {
  const h = harness(t, 'vm');
  const vm = (version: number, size: string): Blueprint => ({
    name: 'notes', version, owner: OWNER, node: NODE,
    volumes: [{ name: 'disk', size, kind: 'block' }],
    workloads: [{ name: 'app', kind: 'vm', image: 'zone/busybox', disks: [{ volume: 'disk' }] }],
  });
  h.engine.start();
  h.apply(vm(1, '64Mi'));
  await waitFor(() => h.status('app')?.state === 'running', { timeoutMs: 5000, what: 'app running' });
  h.log.length = 0;
  h.apply(vm(2, '128Mi'));
  await waitFor(() => h.log.includes('ensure volume disk'), { timeoutMs: 5000, what: 'the volume grown' });
  await h.engine.idle();
  t.same(h.log, [`grow disk /volumes/disk to ${128 * 1024 * 1024} of app`, 'ensure volume disk']);
});
