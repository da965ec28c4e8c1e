import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import { pipeIdentity } from '../../../blueprints/pipes.ts';
import {
  pipeEndKey, type NetworkSpec, type ObservedVolume, type ObservedWorkload, type PipeEnd, type VmLink, type VolumeSpec, type WorkloadSpec,
} from '../../../drivers/contract.ts';
import { volumeId, workloadId } from '../../../drivers/names.ts';
import { legacyWorkloadId } from '../../../drivers/names.ts';
import {
  joinKey, linkKey, networkHash, plan, planWorkloads, stepKey, type Desired, type NetworkView, type Observed, type Step, type StepKind,
} from '../../../appliance/engine/plan.ts';
import type { BackoffPolicy } from '../../../lib/backoff.ts';
import type { WorkloadRecord } from '../../../appliance/store.ts';

const NODE = 'node1';
const OWNER = 'ed25519:' + 'A'.repeat(43) + '=';
const NOW = new Date('2026-06-01T12:00:00Z');
const BACKOFF: BackoffPolicy = { firstMs: 1000, maxMs: 60_000, stableMs: 600_000, crashloopAfter: 3 };

function spec(name: string, extra: Partial<Workload> = {}): WorkloadSpec {
  const definition = normalizeWorkload({ name, kind: 'container', image: 'zone/busybox', ...extra } as Workload);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload: name, id: workloadId(NODE, OWNER, 'bp', name), specHash: specHash(definition), definition };
}

function observed(s: WorkloadSpec, extra: Partial<ObservedWorkload> = {}): ObservedWorkload {
  return {
    id: s.id, node: NODE, owner: OWNER, blueprint: 'bp', workload: s.workload, kind: 'container', specHash: s.specHash,
    state: 'running', exitCode: null, startedAt: '2026-06-01T11:59:00Z', finishedAt: null, health: null, oomKilled: false, ...extra,
  };
}

function record(s: WorkloadSpec, extra: Partial<WorkloadRecord> = {}): WorkloadRecord {
  return {
    id: s.id, owner: OWNER, blueprint: 'bp', workload: s.workload, kind: 'container', state: 'running', health: null,
    restarts: 0, attempt: 0, lastExit: null, lastError: null, since: '2026-06-01T11:59:00Z', nextRestartAt: null, ...extra,
  };
}

const seen = (...ws: ObservedWorkload[]): Observed => ({ workloads: new Map(ws.map((w) => [w.id, w])), unavailable: new Set(), records: new Map() });
const recs = (...rs: WorkloadRecord[]) => new Map(rs.map((r) => [r.id, r]));
/** A step as [kind, workload, extra] for compact expectations. */
const brief = (steps: Step[]) => steps.map((s) => s.kind === 'remove' ? [s.kind, s.identity.workload]
  : s.kind === 'wait' ? [s.kind, s.spec.workload, s.until.toISOString(), s.attempt]
  : (s.kind === 'start' || s.kind === 'restart') && s.recovery ? [s.kind, s.spec.workload, `attempt ${s.recovery.attempt}`]
  : 'spec' in s && 'workload' in s.spec ? [s.kind, s.spec.workload] : [s.kind]);

const web = spec('web');
const job = spec('job', { restart: 'on-failure' });
const once = spec('once', { restart: 'never' });
const checked = spec('checked', { health: { command: ['true'] } });
/** `web` as an appliance before 128-bit names made it. */
const legacyWeb = observed(web, { id: legacyWorkloadId(NODE, OWNER, 'bp', 'web') });

const cases: { name: string; desired: WorkloadSpec[]; observed: Observed; records?: Map<string, WorkloadRecord>; busy?: string[]; expect: unknown[] }[] = [
  { name: 'a new workload is created', desired: [web], observed: seen(), expect: [['create', 'web']] },
  { name: 'a freshly applied workload (running, same spec) plans zero steps', desired: [web], observed: seen(observed(web)), records: recs(record(web)), expect: [] },
  { name: 'adopt: running and matching with no record (appliance restarted, store kept) plans no step', desired: [web], observed: seen(observed(web)), expect: [] },
  { name: 'a created but never started workload is started', desired: [web], observed: seen(observed(web, { state: 'created', startedAt: null })), expect: [['start', 'web']] },
  { name: 'a paused workload is started', desired: [web], observed: seen(observed(web, { state: 'paused' })), expect: [['start', 'web']] },
  { name: 'a changed spec is replaced', desired: [web], observed: seen(observed(web, { specHash: 'old' })), expect: [['replace', 'web']] },
  { name: 'a workload not desired any more is removed', desired: [], observed: seen(observed(web)), expect: [['remove', 'web']] },
  {
    name: 'a first crash is restarted at once (as Docker and systemd do)', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1, finishedAt: '2026-06-01T11:59:30Z' })), records: recs(record(web)),
    expect: [['start', 'web', 'attempt 0']],
  },
  {
    name: 'a second crash without a stable period waits the first backoff delay', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1, finishedAt: '2026-06-01T11:59:30Z' })), records: recs(record(web, { attempt: 1 })),
    expect: [['wait', 'web', '2026-06-01T12:00:01.000Z', 1]],
  },
  {
    name: 'a crash after restarts without a stable period doubles the delay', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1, finishedAt: '2026-06-01T11:59:30Z' })), records: recs(record(web, { attempt: 3 })),
    expect: [['wait', 'web', '2026-06-01T12:00:04.000Z', 3]],
  },
  {
    name: 'a crash after a stable run starts the backoff over: restarted at once', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1, startedAt: '2026-06-01T10:00:00Z', finishedAt: '2026-06-01T11:59:30Z' })),
    records: recs(record(web, { attempt: 5 })),
    expect: [['start', 'web', 'attempt 0']],
  },
  {
    name: 'a scheduled restart not yet due keeps waiting', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1 })), records: recs(record(web, { state: 'backoff', attempt: 1, nextRestartAt: '2026-06-01T12:00:05.000Z' })),
    expect: [['wait', 'web', '2026-06-01T12:00:05.000Z', 1]],
  },
  {
    name: 'a scheduled restart that is due starts it', desired: [web],
    observed: seen(observed(web, { state: 'exited', exitCode: 1 })), records: recs(record(web, { state: 'backoff', nextRestartAt: '2026-06-01T11:59:59.000Z' })),
    expect: [['start', 'web', 'attempt 0']],
  },
  { name: 'on-failure: exit code 0 stays exited', desired: [job], observed: seen(observed(job, { state: 'exited', exitCode: 0 })), expect: [] },
  { name: 'on-failure: exit code 2 restarts', desired: [job], observed: seen(observed(job, { state: 'exited', exitCode: 2 })), expect: [['start', 'job', 'attempt 0']] },
  { name: 'on-failure: killed for memory restarts even with code 0', desired: [job], observed: seen(observed(job, { state: 'exited', exitCode: 0, oomKilled: true })), expect: [['start', 'job', 'attempt 0']] },
  { name: 'on-failure: a repeated failure waits its backoff', desired: [job], observed: seen(observed(job, { state: 'exited', exitCode: 2 })), records: recs(record(job, { attempt: 2 })), expect: [['wait', 'job', '2026-06-01T12:00:02.000Z', 2]] },
  { name: 'never: a failed exit stays exited', desired: [once], observed: seen(observed(once, { state: 'exited', exitCode: 1 })), expect: [] },
  { name: 'unhealthy and running is restarted like a crash (the first time at once)', desired: [checked], observed: seen(observed(checked, { health: 'unhealthy' })), expect: [['restart', 'checked', 'attempt 0']] },
  {
    name: 'unhealthy again waits its backoff', desired: [checked], observed: seen(observed(checked, { health: 'unhealthy' })),
    records: recs(record(checked, { attempt: 1 })), expect: [['wait', 'checked', '2026-06-01T12:00:01.000Z', 1]],
  },
  {
    name: 'unhealthy with the restart due is restarted', desired: [checked], observed: seen(observed(checked, { health: 'unhealthy' })),
    records: recs(record(checked, { attempt: 1, nextRestartAt: '2026-06-01T12:00:00.000Z' })), expect: [['restart', 'checked', 'attempt 1']],
  },
  { name: 'starting or healthy is left alone', desired: [checked], observed: seen(observed(checked, { health: 'starting' })), expect: [] },
  { name: 'drift: removed behind the back is created again', desired: [web], observed: seen(), records: recs(record(web)), expect: [['create', 'web']] },
  {
    name: 'a create that failed waits out its backoff', desired: [web], observed: seen(),
    records: recs(record(web, { state: 'backoff', attempt: 1, nextRestartAt: '2026-06-01T12:00:02.000Z' })), expect: [['wait', 'web', '2026-06-01T12:00:02.000Z', 1]],
  },
  {
    name: 'an unavailable engine: nothing is planned for its kind, nothing removed', desired: [web],
    observed: { workloads: new Map(), unavailable: new Set(['container']), records: new Map() }, records: recs(record(web)), expect: [],
  },
  { name: 'a workload with a step in flight is left out', desired: [web], observed: seen(), busy: [web.id], expect: [] },
  {
    name: 'several at once', desired: [web, job], observed: seen(observed(job, { specHash: 'x' }), observed(once)),
    expect: [['create', 'web'], ['replace', 'job'], ['remove', 'once']],
  },
  {
    name: 'upgrade: a workload under an older appliance\'s name is removed first, its successor not created beside it',
    desired: [web], observed: seen(legacyWeb), records: recs(record(web, { id: legacyWeb.id })), expect: [['remove', 'web']],
  },
  { name: 'upgrade: once the old one is gone, the workload is created under its own name', desired: [web], observed: seen(), expect: [['create', 'web']] },
  { name: 'upgrade: an old name being removed holds its successor back', desired: [web], observed: seen(legacyWeb), busy: [legacyWeb.id], expect: [] },
  {
    name: 'upgrade: so does its removal in flight once the engine no longer lists it, until its record is forgotten',
    desired: [web], observed: seen(), records: recs(record(web, { id: legacyWeb.id })), busy: [legacyWeb.id], expect: [],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.same(brief(planWorkloads(c.desired, { ...c.observed, records: c.records ?? new Map() }, NOW, { backoff: BACKOFF, busy: new Set(c.busy ?? []) })), c.expect);
  });
}

t.test('the removal of an old name says why', async (t) => {
  const [step] = planWorkloads([web], seen(legacyWeb), NOW, { backoff: BACKOFF });
  t.match(step, { kind: 'remove', id: legacyWeb.id, reason: /older appliance/ });
});

t.test('the plan is a function of its inputs: the same inputs give the same steps', async (t) => {
  const args = [[web, job], { ...seen(observed(job, { state: 'exited', exitCode: 3 })), records: recs(record(job)) }, NOW, { backoff: BACKOFF }] as const;
  t.same(planWorkloads(...args), planWorkloads(...args));
});

t.test('an owner\'s restart is planned at once, counted from the attempt it is at', async (t) => {
  const steps = planWorkloads([web], { ...seen(observed(web)), records: recs(record(web, { attempt: 2 })), restartsAsked: new Map([[web.id, 'asked by its owner']]) }, NOW, { backoff: BACKOFF });
  t.same(brief(steps), [['restart', 'web', 'attempt 2']]);
});

// The whole plan: networks, workloads, links, mounts and pipe ends, as data.
const mesh = { name: 'mesh', subnet: '10.88.1.0/24', ipRange: '10.88.0.0/16', wireguard: { privateKey: 'sealed:x', listenPort: 51820, peers: [] } };
function graphSpec(name: string, kind: 'container' | 'vm', networks: { name: string; ip: string }[] = [], blueprint = 'bp'): WorkloadSpec {
  const definition = normalizeWorkload({ name, kind, image: 'zone/busybox', networks } as Workload, [mesh]);
  return { node: NODE, owner: OWNER, blueprint, workload: name, id: workloadId(NODE, OWNER, blueprint, name), specHash: specHash(definition), definition };
}
const meshSpec: NetworkSpec = { node: NODE, owner: OWNER, blueprint: 'bp', network: 'mesh', id: 'zn-mesh', definition: mesh };
const local = { name: 'local', subnet: '10.89.1.0/24' };
const localSpec: NetworkSpec = { node: NODE, owner: OWNER, blueprint: 'bp', network: 'local', id: 'zn-local', definition: local };
const localVm = (() => {
  const definition = normalizeWorkload({ name: 'lbox', kind: 'vm', image: 'zone/busybox', networks: [{ name: 'local', ip: '10.89.1.20' }] } as Workload, [local]);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload: 'lbox', id: workloadId(NODE, OWNER, 'bp', 'lbox'), specHash: specHash(definition), definition };
})();
const joinedWeb = graphSpec('joined', 'container', [{ name: 'mesh', ip: '10.88.1.10' }]);
const vm = graphSpec('box', 'vm', [{ name: 'mesh', ip: '10.88.1.20' }]);
const plain = graphSpec('plain', 'container');
const link: VmLink = { network: 'mesh', bridge: 'zb-1', mac: '52:54:00:58:01:14', address: '10.88.1.20/24', gateway: '10.88.1.1' };
const end = (role: 'produce' | 'consume', s: WorkloadSpec): PipeEnd => ({
  ...pipeIdentity(OWNER, `${NODE}/bp/plain.stdout`, `${NODE}/bp/joined.stdin`), role, blueprint: 'bp', workload: s.workload, workloadId: s.id, kind: 'container',
});
const producer = end('produce', plain);
const consumer = end('consume', joinedWeb);
const ready: NetworkView = { owner: OWNER, blueprint: 'bp', up: true, ensured: networkHash(meshSpec) };
const gone = (s: WorkloadSpec) => observed(s, { kind: s.definition.kind });
const running = (s: WorkloadSpec, pid = 100) => observed(s, { kind: s.definition.kind, pid });
const MIB = 1024 * 1024;
const HOUR = 3600 * 1000;
const db: VolumeSpec = { node: NODE, owner: OWNER, blueprint: 'bp', volume: 'db', id: volumeId(NODE, OWNER, 'bp', 'db'), kind: 'filesystem', sizeBytes: 64 * MIB };
const dbHere = (extra: Partial<ObservedVolume> = {}): ObservedVolume => ({ ...db, path: '/v/db', releasedAt: null, ...extra });
const app = spec('app', { mounts: [{ volume: 'db', target: '/data' }] });
const appV1 = observed(app, { specHash: 'older' });

/** A step as [kind, what it is about]. */
const about = (s: Step): unknown[] => {
  switch (s.kind) {
    case 'ensure-network': return [s.kind, s.network.network, s.reason];
    case 'remove-network': return [s.kind, s.id];
    case 'make-vm-bridge': return [s.kind, s.network.network, s.vm.workload, s.vm.ip];
    case 'attach-container-to-network': return [s.kind, s.network.network, s.container.workload, s.container.pid, s.container.ip];
    case 'mount': return [s.kind, s.spec.workload];
    case 'unmount': return [s.kind, s.id];
    case 'pipe-ends': return [s.kind, s.ends.map((e) => `${e.role} ${e.workload}`)];
    case 'remove': return [s.kind, s.identity.workload];
    case 'wait': return [s.kind, s.spec.workload];
    case 'volume-create': case 'volume-grow': case 'volume-reclaim': case 'volume-mount': case 'volume-refuse': return [s.kind, s.spec.volume];
    case 'volume-release': case 'volume-keep': case 'volume-delete': return [s.kind, s.identity.volume];
    default: return [
      s.kind, s.spec.workload, ...(s.spec.vmLinks ? [s.spec.vmLinks.map((l) => l.bridge)] : []), ...(s.spec.zoneMount ? [s.spec.zoneMount] : []),
      ...(s.spec.volumePaths ? [s.spec.volumePaths] : []),
    ];
  }
};

interface GraphCase {
  name: string;
  desired?: Partial<Desired>;
  observed?: Partial<Observed>;
  busy?: string[];
  expect: unknown[][];
  held?: string[];
}

const graph: GraphCase[] = [
  {
    name: 'network before workload: a new network is ensured; the VM on it waits, a container does not',
    desired: { workloads: [vm, joinedWeb], networks: [meshSpec] }, observed: { networks: new Map() },
    expect: [['ensure-network', 'mesh', 'new network'], ['create', 'joined']], held: ['box'],
  },
  {
    name: 'a VM\'s bridge is made once its network is ready, the VM still waiting',
    desired: { workloads: [vm], networks: [meshSpec] }, observed: { networks: new Map([['zn-mesh', ready]]) },
    expect: [['make-vm-bridge', 'mesh', 'box', '10.88.1.20']], held: ['box'],
  },
  {
    name: 'with its bridge made, the VM is created with the link in its spec (it starts on its first try)',
    desired: { workloads: [vm], networks: [meshSpec] }, observed: { networks: new Map([['zn-mesh', ready]]), vmLinks: new Map([[linkKey('zn-mesh', vm.id), link]]) },
    expect: [['create', 'box', ['zb-1']]],
  },
  {
    name: 'an adopted VM whose link the engine does not know yet gets its bridge made again, and is not touched',
    desired: { workloads: [vm], networks: [meshSpec] }, observed: { workloads: new Map([[vm.id, running(vm)]]), networks: new Map([['zn-mesh', ready]]) },
    expect: [['make-vm-bridge', 'mesh', 'box', '10.88.1.20']],
  },
  {
    name: 'a network that is down, or changed, or not ensured since the start is ensured again',
    desired: { networks: [meshSpec, { ...meshSpec, network: 'b', id: 'zn-b' }, { ...meshSpec, network: 'c', id: 'zn-c' }] },
    observed: { networks: new Map([['zn-mesh', { ...ready, up: false }], ['zn-b', { ...ready, ensured: 'old' }], ['zn-c', { ...ready, ensured: null }]]) },
    expect: [['ensure-network', 'mesh', 'not up'], ['ensure-network', 'b', 'definition changed'], ['ensure-network', 'c', 'not ensured since the appliance started']],
  },
  {
    name: 'a network changed by hand (drifted) is ensured again, naming what drifted; one that agrees plans nothing',
    desired: { networks: [meshSpec, { ...meshSpec, network: 'b', id: 'zn-b' }] },
    observed: { networks: new Map([['zn-mesh', { ...ready, drift: 'peer KEY is missing' }], ['zn-b', ready]]) },
    expect: [['ensure-network', 'mesh', 'drifted: peer KEY is missing']],
  },
  {
    name: 'a node-local network (no WireGuard, no interface to be up) is ready once ensured',
    desired: { workloads: [localVm], networks: [localSpec] }, observed: { networks: new Map([['zn-local', { ...ready, up: false, ensured: networkHash(localSpec) }]]) },
    expect: [['make-vm-bridge', 'local', 'lbox', '10.89.1.20']], held: ['lbox'],
  },
  {
    name: 'a container is joined to its network once it runs, with its pid and declared IP',
    desired: { workloads: [joinedWeb, plain], networks: [meshSpec] },
    observed: { workloads: new Map([[joinedWeb.id, running(joinedWeb, 4242)], [plain.id, running(plain, 4343)]]), networks: new Map([['zn-mesh', ready]]) },
    expect: [['attach-container-to-network', 'mesh', 'joined', 4242, '10.88.1.10']],
  },
  {
    name: 'a joined container is not joined again; a restarted one (a new pid) is',
    desired: { workloads: [joinedWeb], networks: [meshSpec] },
    observed: {
      workloads: new Map([[joinedWeb.id, running(joinedWeb, 5000)]]), networks: new Map([['zn-mesh', ready]]),
      joined: new Set([joinKey('zn-mesh', joinedWeb.id, { workload: 'joined', pid: 4242, ip: '10.88.1.10' })]),
    },
    expect: [['attach-container-to-network', 'mesh', 'joined', 5000, '10.88.1.10']],
  },
  {
    name: 'a container is not joined to a network that is not ready, nor when it does not run',
    desired: { workloads: [joinedWeb], networks: [meshSpec] },
    observed: { workloads: new Map([[joinedWeb.id, running(joinedWeb)]]), networks: new Map([['zn-mesh', { ...ready, up: false }]]) },
    expect: [['ensure-network', 'mesh', 'not up']],
  },
  {
    name: 'a network no live blueprint declares is removed',
    observed: { networks: new Map([['zn-old', { ...ready, blueprint: 'old' }]]) },
    expect: [['remove-network', 'zn-old']],
  },
  {
    name: 'removal in reverse: a deleted blueprint\'s workloads go first, its network after',
    observed: { workloads: new Map([[joinedWeb.id, running(joinedWeb)]]), networks: new Map([['zn-mesh', ready]]) },
    expect: [['remove', 'joined']],
  },
  {
    name: 'mount before workload: a container that gets a /zone has it mounted first',
    desired: { workloads: [plain], mounts: new Set([plain.id]) }, observed: { mounts: new Map() },
    expect: [['mount', 'plain']], held: ['plain'],
  },
  {
    name: 'once mounted, it is created with its /zone',
    desired: { workloads: [plain], mounts: new Set([plain.id]) }, observed: { mounts: new Map([[plain.id, '/data/zone/x']]) },
    expect: [['create', 'plain', '/data/zone/x']],
  },
  {
    name: 'a mount that failed does not hold the container: made without /zone',
    desired: { workloads: [plain], mounts: new Set([plain.id]) }, observed: { mounts: new Map(), mountFailed: new Set([plain.id]) },
    expect: [['create', 'plain']],
  },
  {
    name: 'a VM on a network with a /zone waits for its mount after its bridge, then is created with both',
    desired: { workloads: [vm], networks: [meshSpec], mounts: new Set([vm.id]) },
    observed: { networks: new Map([['zn-mesh', ready]]), vmLinks: new Map([[linkKey('zn-mesh', vm.id), link]]), mounts: new Map() },
    expect: [['mount', 'box']], held: ['box'],
  },
  {
    name: 'a VM with its bridge and its /zone mounted is created with both in its spec',
    desired: { workloads: [vm], networks: [meshSpec], mounts: new Set([vm.id]) },
    observed: { networks: new Map([['zn-mesh', ready]]), vmLinks: new Map([[linkKey('zn-mesh', vm.id), link]]), mounts: new Map([[vm.id, '/data/zone/v']]) },
    expect: [['create', 'box', ['zb-1'], '/data/zone/v']],
  },
  {
    name: 'a /zone is unmounted once its workload is gone, not while it is removed',
    observed: { workloads: new Map([[joinedWeb.id, running(joinedWeb)]]), mounts: new Map([[plain.id, '/p'], [joinedWeb.id, '/j']]) },
    expect: [['remove', 'joined'], ['unmount', plain.id]],
  },
  {
    name: 'workload before pipe end: no end runs before its workload exists',
    desired: { workloads: [plain, joinedWeb], pipeEnds: [producer, consumer] }, observed: { pipeEnds: new Map() },
    expect: [['create', 'plain'], ['create', 'joined']],
  },
  {
    name: 'an end runs once its workload exists (whether it runs or not)',
    desired: { workloads: [plain, joinedWeb], pipeEnds: [producer, consumer] },
    observed: { workloads: new Map([[plain.id, running(plain)], [joinedWeb.id, gone(joinedWeb)]]), pipeEnds: new Map() },
    expect: [['pipe-ends', ['produce plain', 'consume joined']]],
  },
  {
    name: 'ends already running plan nothing',
    desired: { workloads: [plain], pipeEnds: [producer] },
    observed: { workloads: new Map([[plain.id, running(plain)]]), pipeEnds: new Map([[pipeEndKey(producer), plain.id]]) },
    expect: [],
  },
  {
    name: 'removal in reverse: a deleted blueprint\'s pipe ends stop before its workloads are removed',
    observed: { workloads: new Map([[plain.id, running(plain)]]), pipeEnds: new Map([[pipeEndKey(producer), plain.id]]) },
    expect: [['pipe-ends', []]],
  },
  {
    name: 'an engine that cannot be asked keeps its workloads\' ends running',
    desired: { workloads: [plain], pipeEnds: [producer] },
    observed: { unavailable: new Set(['container']), pipeEnds: new Map([[pipeEndKey(producer), plain.id]]) },
    expect: [],
  },
  {
    name: 'steps in flight and steps that failed lately are not planned again',
    desired: { workloads: [vm], networks: [meshSpec, { ...meshSpec, network: 'b', id: 'zn-b' }] },
    observed: { networks: new Map(), retryAt: new Map([['network:zn-b', new Date(NOW.getTime() + 1000)]]) },
    busy: ['network:zn-mesh'],
    expect: [], held: ['box'],
  },
  {
    name: 'a failed step is planned again once its retry is due',
    desired: { networks: [meshSpec] }, observed: { networks: new Map(), retryAt: new Map([['network:zn-mesh', NOW]]) },
    expect: [['ensure-network', 'mesh', 'new network']],
  },
  {
    name: 'without a network driver, mount or pipe provider nothing is planned for them',
    desired: { workloads: [vm], networks: [meshSpec], pipeEnds: [producer], mounts: new Set([plain.id]) },
    expect: [['create', 'box']],
  },
  {
    name: 'converged: network ready, link made, container joined, /zone mounted, ends running: zero steps',
    desired: { workloads: [vm, joinedWeb], networks: [meshSpec], pipeEnds: [consumer], mounts: new Set([joinedWeb.id]) },
    observed: {
      workloads: new Map([[vm.id, running(vm)], [joinedWeb.id, running(joinedWeb, 7)]]), networks: new Map([['zn-mesh', ready]]),
      vmLinks: new Map([[linkKey('zn-mesh', vm.id), link]]), joined: new Set([joinKey('zn-mesh', joinedWeb.id, { workload: 'joined', pid: 7, ip: '10.88.1.10' })]),
      mounts: new Map([[joinedWeb.id, '/j']]), pipeEnds: new Map([[pipeEndKey(consumer), joinedWeb.id]]),
    },
    expect: [],
  },
  {
    name: 'volume before workload: a new volume is created, the workload that mounts it waits',
    desired: { workloads: [app, plain], volumes: [db] }, observed: { volumes: [] },
    expect: [['volume-create', 'db'], ['create', 'plain']], held: ['app'],
  },
  {
    name: 'with its volume there, the workload is created with the volume\'s host path',
    desired: { workloads: [app], volumes: [db] }, observed: { volumes: [dbHere()] },
    expect: [['create', 'app', { db: '/v/db' }]],
  },
  {
    name: 'a volume with a step in flight holds its workload',
    desired: { workloads: [app], volumes: [db] }, observed: { volumes: [] }, busy: [`volume:${db.id}`],
    expect: [], held: ['app'],
  },
  {
    name: 'a volume not mounted (after a reboot) is mounted before its workload starts',
    desired: { workloads: [app], volumes: [db] }, observed: { workloads: new Map([[app.id, observed(app, { state: 'exited', exitCode: 0 })]]), volumes: [dbHere({ path: null })] },
    expect: [['volume-mount', 'db']], held: ['app'],
  },
  {
    name: 'a released volume listed again is reclaimed before its workload is made',
    desired: { workloads: [app], volumes: [db] }, observed: { volumes: [dbHere({ releasedAt: new Date(NOW.getTime() - HOUR).toISOString() })] },
    expect: [['volume-reclaim', 'db']], held: ['app'],
  },
  {
    name: 'a larger size: the volume grows before the new version replaces its workload',
    desired: { workloads: [app], volumes: [{ ...db, sizeBytes: 128 * MIB }] }, observed: { workloads: new Map([[app.id, appV1]]), volumes: [dbHere()] },
    expect: [['volume-grow', 'db']], held: ['app'],
  },
  {
    name: 'a grow that failed lately (in use) no longer holds the replacement, which grows it once the old workload is gone',
    desired: { workloads: [app], volumes: [{ ...db, sizeBytes: 128 * MIB }] },
    observed: { workloads: new Map([[app.id, appV1]]), volumes: [dbHere()], retryAt: new Map([[`volume:${db.id}`, new Date(NOW.getTime() + 1000)]]) },
    expect: [['replace', 'app', { db: '/v/db' }]],
  },
  {
    name: 'a refused change holds nothing: it is told, and the workload\'s step fails naming the volume',
    desired: { workloads: [app], volumes: [{ ...db, kind: 'block' }] }, observed: { volumes: [dbHere()] },
    expect: [['volume-refuse', 'db'], ['create', 'app', {}]],
  },
  {
    name: 'a volume no blueprint lists is released (kept for its retention)',
    observed: { volumes: [dbHere()] },
    expect: [['volume-release', 'db']],
  },
  {
    name: 'workload removal before volume delete: past its retention, kept while its blueprint\'s workload is still there',
    observed: { workloads: new Map([[app.id, running(app)]]), volumes: [dbHere({ releasedAt: new Date(NOW.getTime() - 25 * HOUR).toISOString() })] },
    expect: [['volume-keep', 'db'], ['remove', 'app']],
  },
  {
    name: 'once the workload is gone, the volume past its retention is deleted',
    observed: { volumes: [dbHere({ releasedAt: new Date(NOW.getTime() - 25 * HOUR).toISOString() })] },
    expect: [['volume-delete', 'db']],
  },
  {
    name: 'without a volume provider nothing is planned for volumes and nothing is held (the workload\'s step fails naming it)',
    desired: { workloads: [app], volumes: [db] },
    expect: [['create', 'app']],
  },
];

const planned = new Set<string>();
for (const c of graph) {
  t.test(`plan: ${c.name}`, async (t) => {
    const desired: Desired = { workloads: [], networks: [], pipeEnds: [], mounts: new Set(), ...c.desired };
    const seenState: Observed = { workloads: new Map(), unavailable: new Set(), records: new Map(), ...c.observed };
    const result = plan(desired, seenState, NOW, { backoff: BACKOFF, busy: new Set(c.busy ?? []) });
    for (const s of result.steps) planned.add(s.kind);
    t.same(result.steps.map(about), c.expect);
    t.same([...result.held].sort(), (c.held ?? []).map((w) => workloadId(NODE, OWNER, 'bp', w)).sort(), 'held');
  });
}

t.test('every step kind is planned by some row of the tables', async (t) => {
  for (const c of cases) for (const s of planWorkloads(c.desired, { ...c.observed, records: c.records ?? new Map() }, NOW, { backoff: BACKOFF })) planned.add(s.kind);
  const kinds: StepKind[] = ['create', 'start', 'restart', 'replace', 'remove', 'wait', 'ensure-network', 'remove-network', 'attach-container-to-network', 'make-vm-bridge', 'mount', 'unmount', 'pipe-ends',
    'volume-create', 'volume-grow', 'volume-reclaim', 'volume-mount', 'volume-refuse', 'volume-release', 'volume-keep', 'volume-delete'];
  t.same([...planned].sort(), [...kinds].sort());
});

t.test('every step kind has a key it is busy under', async (t) => {
  t.equal(stepKey({ kind: 'pipe-ends', ends: [] }), 'pipe-ends');
  t.equal(stepKey({ kind: 'volume-create', spec: db, reason: '' }), stepKey({ kind: 'volume-delete', id: db.id, identity: db, reason: '' }), 'one step at a time per volume');
  t.equal(stepKey({ kind: 'mount', spec: plain }), `mount:${plain.id}`);
  t.equal(stepKey({ kind: 'unmount', id: plain.id }), `mount:${plain.id}`, 'a mount and an unmount of one workload never overlap');
  t.equal(stepKey({ kind: 'remove-network', id: 'zn-x', reason: '' }), stepKey({ kind: 'ensure-network', network: { ...meshSpec, id: 'zn-x' }, hash: '', reason: '' }));
});
