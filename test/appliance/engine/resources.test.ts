// The loop over resources beside workloads, with in-memory stand-ins for the network
// driver and the pseudokernel's providers: what runs in which order (the plan's
// dependency orders are its own table; here the executors follow them).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import type { Blueprint } from '../../../blueprints/schema.ts';
import {
  type MountProvider, type NetworkDriver, type NetworkSpec, type ObservedNetwork, type ObservedWorkload, type PipeEnd, type PipeEndProvider, type VmLink, type WorkloadSpec,
} from '../../../drivers/contract.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { Reconciler } from '../../../appliance/engine/reconciler.ts';
import { EventLog } from '../../../appliance/events.ts';
import { Store } from '../../../appliance/store.ts';
import type { ZoneEvent } from '../../../appliance/types.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = 'resourcestest';
const OWNER = 'ed25519:' + 'Q'.repeat(43) + '=';

/** A driver that writes what it is asked into the shared log. */
class LoggedDriver extends FakeDriver {
  readonly specs: WorkloadSpec[] = [];
  constructor(kind: string, private readonly log: string[]) {
    super({ kind });
  }
  override async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    this.log.push(`ensure ${spec.workload}`);
    this.specs.push(spec);
    return { ...await super.ensure(spec), pid: 4242 };
  }
  override async list(node: string): Promise<ObservedWorkload[]> {
    return (await super.list(node)).map((w) => (w.state === 'running' ? { ...w, pid: 4242 } : w));
  }
  override async remove(id: string): Promise<void> {
    this.log.push(`remove ${this.specs.find((s) => s.id === id)?.workload ?? id}`);
    return super.remove(id);
  }
}

class MemoryNetworks implements NetworkDriver {
  readonly kind = 'network';
  readonly networks = new Map<string, NetworkSpec>();
  /** What a full look would report changed by hand, by network id; an ensure repairs it. */
  readonly drift = new Map<string, string>();
  constructor(private readonly log: string[]) {}
  async fingerprint() {
    return { kind: 'network', available: true, details: {} };
  }
  async ensure(spec: NetworkSpec): Promise<ObservedNetwork> {
    this.log.push(`ensure network ${spec.network}`);
    this.networks.set(spec.id, spec);
    this.drift.delete(spec.id);
    return this.observed(spec);
  }
  async inspect(id: string) {
    const spec = this.networks.get(id);
    return spec ? this.observed(spec) : null;
  }
  async list() {
    return [...this.networks.values()].map((s) => this.observed(s));
  }
  async remove(id: string) {
    this.log.push(`remove network ${this.networks.get(id)?.network ?? id}`);
    this.networks.delete(id);
  }
  async attachContainer(spec: NetworkSpec, c: { workload: string; pid: number; ip: string }) {
    this.log.push(`join ${c.workload} ${spec.network} ${c.ip}`);
  }
  async attachVm(spec: NetworkSpec, vm: { workload: string; ip: string }): Promise<VmLink> {
    this.log.push(`bridge ${vm.workload} ${spec.network}`);
    return { network: spec.network, bridge: 'zb-test', mac: '52:54:00:00:00:01', address: `${vm.ip}/24`, gateway: '10.88.1.1' };
  }
  async detachContainer() {}
  private observed(s: NetworkSpec): ObservedNetwork {
    return {
      id: s.id, node: s.node, owner: s.owner, blueprint: s.blueprint, network: s.network, namespace: s.id, interface: 'zw-test',
      implementation: 'kernel', pid: null, up: true, publicKey: null, listenPort: null, peers: [],
      ...(this.drift.has(s.id) ? { drift: this.drift.get(s.id)! } : {}),
    };
  }
}

class MemoryPseudokernel implements MountProvider, PipeEndProvider {
  private readonly mounts = new Map<string, string>();
  private running: PipeEnd[] = [];
  constructor(private readonly log: string[]) {}
  wants(spec: WorkloadSpec) {
    return spec.definition.kind === 'container';
  }
  mounted() {
    return this.mounts;
  }
  async mount(spec: WorkloadSpec) {
    this.log.push(`mount ${spec.workload}`);
    this.mounts.set(spec.id, `/zone/${spec.workload}`);
    return `/zone/${spec.workload}`;
  }
  async unmount(id: string) {
    this.log.push(`unmount ${this.mounts.get(id) ?? id}`);
    this.mounts.delete(id);
  }
  ends() {
    return this.running;
  }
  async setEnds(ends: readonly PipeEnd[]) {
    this.log.push(`pipe ends [${ends.map((e) => `${e.role} ${e.workload}`).join(', ')}]`);
    this.running = [...ends];
  }
}

function harness(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'zone-resources-'));
  const store = new Store(join(dir, 'zone.db'));
  const logger = pino({ level: 'silent' });
  const events = new EventLog(store, logger);
  const seen: ZoneEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const log: string[] = [];
  const containers = new LoggedDriver('container', log);
  const vms = new LoggedDriver('vm', log);
  const networks = new MemoryNetworks(log);
  const pk = new MemoryPseudokernel(log);
  const engine = new Reconciler({
    node: NODE, store, events, logger, resyncMs: 60_000, networks, mounts: pk, pipeEnds: pk,
    drivers: new Map([['container', containers], ['vm', vms]]),
    backoff: { firstMs: 100, maxMs: 800, stableMs: 60_000, crashloopAfter: 3 },
  });
  t.teardown(async () => {
    await engine.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const apply = (bp: Partial<Blueprint>) => {
    store.putBlueprint({ owner: OWNER, node: NODE, ...bp } as Blueprint, new Date().toISOString());
    engine.wake();
  };
  const state = (w: string) => engine.statuses().get(workloadId(NODE, OWNER, 'app', w))?.state;
  return { log, seen, engine, apply, state, vms, containers, networks, pk };
}

const mesh = { name: 'mesh', subnet: '10.88.1.0/24' };

t.test('a VM on a network starts on its first try, with the link its bridge step returned; a tombstone removes in reverse', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply({
    name: 'app', version: 1, networks: [mesh],
    workloads: [
      { name: 'box', kind: 'vm', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.20' }] },
      { name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.10' }] },
    ],
  });
  await waitFor(() => h.state('box') === 'running' && h.log.includes('join web mesh 10.88.1.10'), { timeoutMs: 5000, what: 'the VM running, the container joined' });
  await h.engine.idle();
  const order = (entry: string) => h.log.indexOf(entry);
  t.ok(order('ensure network mesh') < order('bridge box mesh') && order('bridge box mesh') < order('ensure box'), 'network, then bridge, then VM');
  t.ok(order('ensure web') < order('join web mesh 10.88.1.10'), 'a container is joined once it runs');
  t.same(h.vms.specs.map((s) => s.vmLinks), [[{ network: 'mesh', bridge: 'zb-test', mac: '52:54:00:00:00:01', address: '10.88.1.20/24', gateway: '10.88.1.1' }]]);
  t.same(h.seen.filter((e) => e.workload === 'box').map((e) => e.to), ['pending', 'running'], 'no failed start, no backoff');
  t.equal(h.log.filter((e) => e.startsWith('ensure network')).length, 1, 'a converged network is not ensured again');

  h.log.length = 0;
  h.apply({ name: 'app', version: 2, delete: true });
  await waitFor(() => h.networks.networks.size === 0, { timeoutMs: 5000, what: 'the network removed' });
  await h.engine.idle();
  t.ok(h.log.indexOf('remove network mesh') > Math.max(h.log.indexOf('remove box'), h.log.indexOf('remove web')), 'the network goes after its workloads');
});

t.test('a network the driver reports drifted is ensured again, once; its workload is not remade', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply({ name: 'app', version: 1, networks: [mesh], workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.10' }] }] });
  await waitFor(() => h.log.includes('join web mesh 10.88.1.10'), { timeoutMs: 5000, what: 'the container joined' });
  await h.engine.idle();
  const ensures = () => h.log.filter((e) => e === 'ensure network mesh').length;
  t.equal(ensures(), 1);

  const [id] = [...h.networks.networks.keys()] as [string];
  h.networks.drift.set(id, 'peer KEY is missing');
  h.engine.wake();
  await waitFor(() => ensures() === 2, { timeoutMs: 5000, what: 'the drifted network ensured again' });
  await h.engine.idle();
  h.engine.wake();
  await h.engine.idle();
  t.equal(ensures(), 2, 'repaired: not ensured again');
  t.equal(h.log.filter((e) => e === 'ensure web').length, 1, 'the container was not remade');
});

t.test('a container\'s /zone is mounted before it is made and unmounted once it is gone; pipe ends run once their workloads exist and stop before they go', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply({
    name: 'app', version: 1,
    workloads: [{ name: 'a', kind: 'container', image: 'zone/busybox' }, { name: 'b', kind: 'container', image: 'zone/busybox' }],
    pipes: [{ from: 'a.stdout', to: 'b.stdin' }],
  });
  await waitFor(() => h.log.some((e) => e.startsWith('pipe ends [') && e.includes('produce a') && e.includes('consume b')), { timeoutMs: 5000, what: 'both ends running' });
  await h.engine.idle();
  const order = (entry: string) => h.log.indexOf(entry);
  t.ok(order('mount a') < order('ensure a') && order('mount b') < order('ensure b'), 'mounted, then made');
  t.same(h.containers.specs.map((s) => [s.workload, s.zoneMount]).sort(), [['a', '/zone/a'], ['b', '/zone/b']], 'made with their /zone');
  const ends = h.log.findIndex((e) => e.startsWith('pipe ends [') && e.includes('produce a'));
  t.ok(ends > order('ensure a') && ends > order('ensure b'), 'the ends run once their workloads exist');

  h.log.length = 0;
  h.apply({ name: 'app', version: 2, delete: true });
  await waitFor(() => h.log.includes('unmount /zone/a') && h.log.includes('unmount /zone/b'), { timeoutMs: 5000, what: 'both unmounted' });
  await h.engine.idle();
  t.equal(order('pipe ends []'), 0, 'the ends stop first');
  t.ok(order('remove a') > 0 && order('unmount /zone/a') > order('remove a'), 'then the workload, then its /zone');
});
