// The console's reach into workloads, against a stub driver: a terminal opens only into
// the owner's own running workload and only where the policy allows; usage samples turn
// CPU time into cores between two samples and keep an hour.
import { PassThrough } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { WorkloadConsole } from '../../appliance/console.ts';
import { workloadId } from '../../drivers/names.ts';
import type { BlueprintStatus, WorkloadState } from '../../appliance/types.ts';
import type { Driver, WorkloadUsage } from '../../drivers/contract.ts';

const OWNER = 'ed25519:owner';
const OTHER = 'ed25519:other';

function blueprint(state: WorkloadState, owner = OWNER): BlueprintStatus {
  return {
    name: 'site', owner, version: 1, deleted: false, acceptedAt: '2026-11-29T00:00:00.000Z',
    workloads: [{ blueprint: 'site', owner, workload: 'web', kind: 'container', state, health: null, restarts: 0, lastExit: null, lastError: null, since: '2026-11-29T00:00:00.000Z', nextRestartAt: null }],
  };
}

function stubDriver(usage: () => WorkloadUsage | null) {
  const opened: string[] = [];
  const driver = {
    kind: 'container',
    exec: async (id: string) => {
      opened.push(id);
      const stream = new PassThrough();
      return { input: stream, output: stream, resize: async () => undefined };
    },
    usage: async () => usage(),
  } as unknown as Driver;
  return { driver, opened };
}

function consoleOf(blueprints: BlueprintStatus[], options: { terminals?: boolean; usage?: () => WorkloadUsage | null; clock?: () => number } = {}) {
  const { driver, opened } = stubDriver(options.usage ?? (() => null));
  const access = new WorkloadConsole({
    node: 'n1', drivers: new Map([['container', driver]]), blueprints: () => blueprints, terminals: options.terminals ?? true,
    logger: pino({ level: 'silent' }), ...(options.clock ? { clock: options.clock } : {}),
  });
  return { access, opened };
}

const size = { cols: 80, rows: 24 };

t.test('a terminal opens into the owner\'s own running workload, by its engine name', async (t) => {
  const { access, opened } = consoleOf([blueprint('running')]);
  await access.openTerminal(OWNER, 'site', 'web', size);
  t.same(opened, [workloadId('n1', OWNER, 'site', 'web')]);
});

for (const [what, blueprints, who, terminals, code] of [
  ['another owner\'s workload reads as not there', [blueprint('running')], OTHER, true, 'NOT_FOUND'],
  ['a workload that is not there', [], OWNER, true, 'NOT_FOUND'],
  ['the node\'s policy forbids terminals', [blueprint('running')], OWNER, false, 'POLICY'],
  ['a workload in backoff', [blueprint('backoff')], OWNER, true, 'CONFLICT'],
] as const) {
  t.test(`refused: ${what} (${code})`, async (t) => {
    const { access, opened } = consoleOf([...blueprints], { terminals });
    await t.rejects(access.openTerminal(who, 'site', 'web', size), { code });
    t.same(opened, [], 'the driver was not asked');
  });
}

t.test('usage: cores between two samples, memory as sampled, an hour kept, no rate across a restart, only the owner\'s', async (t) => {
  let now = Date.parse('2026-11-29T10:00:00Z');
  let reading: WorkloadUsage = { cpuSeconds: 10, memoryBytes: 1000 };
  const { access } = consoleOf([blueprint('running')], { clock: () => now, usage: () => reading });
  await access.sample();
  t.same(access.usage(OWNER)[0]?.samples, [], 'one reading makes no rate yet');
  now += 10_000;
  reading = { cpuSeconds: 15, memoryBytes: 2000 };
  await access.sample();
  t.same(access.usage(OWNER)[0]?.samples, [{ at: '2026-11-29T10:00:10.000Z', cpu: 0.5, memoryBytes: 2000 }]);
  now += 10_000;
  reading = { cpuSeconds: 1, memoryBytes: 3000 };
  await access.sample();
  t.equal(access.usage(OWNER)[0]?.samples.length, 1, 'a restart (CPU time went back) adds no sample');
  now += 61 * 60_000;
  reading = { cpuSeconds: 61, memoryBytes: 4000 };
  await access.sample();
  t.same(access.usage(OWNER)[0]?.samples.map((s) => s.memoryBytes), [4000], 'samples older than an hour are dropped');
  t.same(access.usage(OTHER), [], 'another owner has none');
  t.same(access.latestUsage().map((u) => [u.owner, u.blueprint, u.workload, u.sample.memoryBytes]), [[OWNER, 'site', 'web', 4000]]);
});
