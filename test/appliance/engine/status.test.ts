import t from 'tap';
import { next, type Outcome } from '../../../appliance/engine/status.ts';
import type { BackoffPolicy } from '../../../lib/backoff.ts';
import type { WorkloadRecord } from '../../../appliance/store.ts';

const NOW = new Date('2026-06-01T12:00:00Z');
const BACKOFF: BackoffPolicy = { firstMs: 1000, maxMs: 60_000, stableMs: 600_000, crashloopAfter: 3 };
const WHO = { id: 'zw-1', owner: 'ed25519:o', blueprint: 'bp', workload: 'web', kind: 'container' };

function record(extra: Partial<WorkloadRecord> = {}): WorkloadRecord {
  return {
    ...WHO, state: 'running', health: null, restarts: 0, attempt: 0, lastExit: null, lastError: null, since: '2026-06-01T11:00:00.000Z', nextRestartAt: null, ...extra,
  };
}

interface Row {
  name: string;
  current: WorkloadRecord | null;
  outcome: Outcome;
  /** The fields of the record after (null: forgotten), and the reason. */
  expect: Partial<WorkloadRecord> | null;
  reason: string | RegExp;
}

const rows: Row[] = [
  // Observed, no step.
  { name: 'running with no record: adopted', current: null, outcome: { kind: 'running', health: null, startedAt: '2026-06-01T11:00:00Z' }, expect: { state: 'running', since: NOW.toISOString() }, reason: 'adopted: already running' },
  { name: 'running after its engine was unknown: engine back', current: record({ state: 'unknown', lastError: 'down' }), outcome: { kind: 'running', health: 'healthy', startedAt: null }, expect: { state: 'running', health: 'healthy', lastError: null, since: NOW.toISOString() }, reason: 'engine back' },
  { name: 'running for the stable period after restarts: the backoff starts over', current: record({ attempt: 4 }), outcome: { kind: 'running', health: null, startedAt: '2026-06-01T11:50:00Z' }, expect: { state: 'running', attempt: 0, since: '2026-06-01T11:00:00.000Z' }, reason: 'stable' },
  { name: 'running, not yet stable: the attempt count stays', current: record({ state: 'pending', attempt: 2 }), outcome: { kind: 'running', health: null, startedAt: '2026-06-01T11:59:00Z' }, expect: { state: 'running', attempt: 2, since: NOW.toISOString() }, reason: 'running' },
  { name: 'exited with no restart by its policy', current: record(), outcome: { kind: 'exited', exitCode: 0, policy: 'on-failure' }, expect: { state: 'exited', lastExit: 0, health: null }, reason: 'exited with code 0; restart policy on-failure' },
  { name: 'exited without a code', current: record(), outcome: { kind: 'exited', exitCode: null, policy: 'never' }, expect: { state: 'exited', lastExit: null }, reason: 'exited; restart policy never' },
  { name: 'its engine is unavailable: unknown', current: record(), outcome: { kind: 'engine-unavailable', reason: 'docker engine unavailable: gone' }, expect: { state: 'unknown', lastError: 'docker engine unavailable: gone' }, reason: 'docker engine unavailable: gone' },
  // Planned.
  { name: 'a step planned for a new workload: pending', current: null, outcome: { kind: 'planned' }, expect: { state: 'pending', restarts: 0, attempt: 0, since: NOW.toISOString() }, reason: 'accepted' },
  { name: 'a step planned for a known workload changes nothing', current: record({ state: 'exited' }), outcome: { kind: 'planned' }, expect: { state: 'exited', since: '2026-06-01T11:00:00.000Z' }, reason: 'planned' },
  { name: 'waiting for its backoff', current: record(), outcome: { kind: 'waiting', until: new Date('2026-06-01T12:00:02Z'), attempt: 2, reason: 'exited with code 3', exitCode: 3 }, expect: { state: 'backoff', attempt: 2, nextRestartAt: '2026-06-01T12:00:02.000Z', lastExit: 3, lastError: 'exited with code 3' }, reason: 'exited with code 3; restart 3 at 2026-06-01T12:00:02.000Z' },
  { name: 'waiting after crashloopAfter restarts: crashloop', current: record(), outcome: { kind: 'waiting', until: new Date('2026-06-01T12:00:04Z'), attempt: 3, reason: 'unhealthy' }, expect: { state: 'crashloop', attempt: 3, lastExit: null }, reason: /^unhealthy; restart 4/ },
  { name: 'waiting when the restart is scheduled already changes nothing', current: record({ state: 'backoff', attempt: 1, nextRestartAt: '2026-06-01T12:00:01.000Z' }), outcome: { kind: 'waiting', until: new Date('2026-06-01T12:00:09Z'), attempt: 1, reason: 'x' }, expect: { state: 'backoff', nextRestartAt: '2026-06-01T12:00:01.000Z' }, reason: 'x' },
  // Steps in progress.
  { name: 'a restart under way: down (pending) with the exit it follows', current: record(), outcome: { kind: 'restarting', reason: 'exited with code 137', exitCode: 137 }, expect: { state: 'pending', lastExit: 137, health: null }, reason: 'restarting (exited with code 137)' },
  { name: 'a restart under way after a backoff: it shows the backoff until it runs', current: record({ state: 'backoff', nextRestartAt: '2026-06-01T12:00:00.000Z' }), outcome: { kind: 'restarting', reason: 'unhealthy' }, expect: { state: 'backoff' }, reason: 'restarting (unhealthy)' },
  { name: 'a removal under way', current: record(), outcome: { kind: 'removing', reason: 'not desired any more' }, expect: { state: 'removing' }, reason: 'not desired any more' },
  // Steps that succeeded.
  { name: 'created', current: record({ state: 'pending' }), outcome: { kind: 'succeeded', action: 'create', reason: 'new workload', state: 'running', health: null }, expect: { state: 'running', restarts: 0, attempt: 0 }, reason: 'created' },
  { name: 'created again after drift', current: record(), outcome: { kind: 'succeeded', action: 'create', reason: 'missing from its engine', state: 'running', health: null }, expect: { state: 'running', restarts: 0 }, reason: 'created again (missing from its engine)' },
  { name: 'started, not yet running: pending', current: record({ state: 'pending' }), outcome: { kind: 'succeeded', action: 'start', reason: 'not started', state: 'created', health: null }, expect: { state: 'pending' }, reason: 'started (not started)' },
  { name: 'replaced: the backoff starts over', current: record({ attempt: 3, restarts: 3 }), outcome: { kind: 'succeeded', action: 'replace', reason: 'spec changed', state: 'running', health: null }, expect: { state: 'running', attempt: 0, restarts: 3 }, reason: 'replaced (spec changed)' },
  { name: 'restarted after a failure: one more restart, one more attempt', current: record({ state: 'pending', restarts: 1, attempt: 1, lastError: 'x', nextRestartAt: '2026-06-01T12:00:00.000Z' }), outcome: { kind: 'succeeded', action: 'start', reason: 'exited with code 3', state: 'running', health: null, attempt: 1 }, expect: { state: 'running', restarts: 2, attempt: 2, lastError: null, nextRestartAt: null }, reason: 'restarted (exited with code 3)' },
  { name: 'restarted as attempt 0 after a stable run', current: record({ state: 'pending', attempt: 5 }), outcome: { kind: 'succeeded', action: 'start', reason: 'exited', state: 'running', health: null, attempt: 0 }, expect: { attempt: 1, restarts: 1 }, reason: 'restarted (exited)' },
  // Steps that failed.
  { name: 'a step failed with the engine down: unknown', current: record({ state: 'pending' }), outcome: { kind: 'failed', action: 'create', cause: 'engine-down', message: 'docker engine unavailable: x' }, expect: { state: 'unknown', lastError: 'docker engine unavailable: x', attempt: 0 }, reason: 'docker engine unavailable: x' },
  { name: 'a spec that cannot run: failed, retried after the cap', current: record({ state: 'pending' }), outcome: { kind: 'failed', action: 'create', cause: 'unrunnable', message: 'no such image' }, expect: { state: 'failed', attempt: 1, nextRestartAt: '2026-06-01T12:01:00.000Z' }, reason: 'create failed: no such image' },
  { name: 'a first failure is retried at once', current: record({ state: 'pending' }), outcome: { kind: 'failed', action: 'start', cause: 'other', message: 'boom' }, expect: { state: 'backoff', attempt: 1, nextRestartAt: NOW.toISOString(), lastError: 'boom' }, reason: 'start failed: boom' },
  { name: 'a repeated failure backs off', current: record({ state: 'pending', attempt: 2 }), outcome: { kind: 'failed', action: 'start', cause: 'other', message: 'boom' }, expect: { state: 'backoff', attempt: 3, nextRestartAt: '2026-06-01T12:00:02.000Z' }, reason: 'start failed: boom' },
  { name: 'a failing restart counts from the attempt it ran as', current: record({ state: 'pending', attempt: 5 }), outcome: { kind: 'failed', action: 'restart', cause: 'other', message: 'boom', attempt: 3 }, expect: { state: 'crashloop', attempt: 4, nextRestartAt: '2026-06-01T12:00:04.000Z' }, reason: 'restart failed: boom' },
  // Gone.
  { name: 'removed: forgotten', current: record(), outcome: { kind: 'removed', reason: 'removed' }, expect: null, reason: 'removed' },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const { record: after, reason } = next(row.current, WHO, row.outcome, NOW, BACKOFF);
    if (row.expect === null) t.equal(after, null);
    else t.match(after, { ...WHO, ...row.expect });
    if (typeof row.reason === 'string') t.equal(reason, row.reason);
    else t.match(reason, row.reason);
  });
}

t.test('every outcome kind has a row', async (t) => {
  const kinds: Outcome['kind'][] = ['running', 'exited', 'engine-unavailable', 'planned', 'waiting', 'restarting', 'removing', 'succeeded', 'failed', 'removed'];
  t.same([...new Set(rows.map((r) => r.outcome.kind))].sort(), [...kinds].sort());
});

t.test('a change of state moves since to now; an unchanged state keeps it', async (t) => {
  const before = record({ state: 'running' });
  t.equal(next(before, WHO, { kind: 'running', health: 'healthy', startedAt: null }, NOW, BACKOFF).record?.since, before.since);
  t.equal(next(before, WHO, { kind: 'exited', exitCode: 1, policy: 'never' }, NOW, BACKOFF).record?.since, NOW.toISOString());
});

t.test('next is a function of its inputs: it changes nothing it is given', async (t) => {
  const before = record();
  const copy = { ...before };
  next(before, WHO, { kind: 'failed', action: 'start', cause: 'other', message: 'x' }, NOW, BACKOFF);
  t.same(before, copy);
});
