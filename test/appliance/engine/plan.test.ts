import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { ObservedWorkload, WorkloadSpec } from '../../../drivers/contract.ts';
import { workloadId } from '../../../drivers/names.ts';
import { legacyWorkloadId } from '../../../drivers/names.ts';
import { planSteps, type Observed, type Step } from '../../../appliance/engine/plan.ts';
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

const seen = (...ws: ObservedWorkload[]): Observed => ({ workloads: new Map(ws.map((w) => [w.id, w])), unavailable: new Set() });
const recs = (...rs: WorkloadRecord[]) => new Map(rs.map((r) => [r.id, r]));
/** A step as [kind, workload, extra] for compact expectations. */
const brief = (steps: Step[]) => steps.map((s) => s.kind === 'remove' ? [s.kind, s.identity.workload]
  : s.kind === 'wait' ? [s.kind, s.spec.workload, s.until.toISOString(), s.attempt]
  : (s.kind === 'start' || s.kind === 'restart') && s.recovery ? [s.kind, s.spec.workload, `attempt ${s.recovery.attempt}`] : [s.kind, s.spec.workload]);

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
    observed: { workloads: new Map(), unavailable: new Set(['container']) }, records: recs(record(web)), expect: [],
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
    t.same(brief(planSteps(c.desired, c.observed, c.records ?? new Map(), NOW, { backoff: BACKOFF, busy: new Set(c.busy ?? []) })), c.expect);
  });
}

t.test('the removal of an old name says why', async (t) => {
  const [step] = planSteps([web], seen(legacyWeb), new Map(), NOW, { backoff: BACKOFF });
  t.match(step, { kind: 'remove', id: legacyWeb.id, reason: /older appliance/ });
});

t.test('the plan is a function of its inputs: the same inputs give the same steps', async (t) => {
  const args = [[web, job], seen(observed(job, { state: 'exited', exitCode: 3 })), recs(record(job)), NOW, { backoff: BACKOFF }] as const;
  t.same(planSteps(...args), planSteps(...args));
});
