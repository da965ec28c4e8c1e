// The appliance is killed with SIGKILL at several points of a deployment; after each
// restart every acknowledged blueprint is there and applied, nothing is lost or
// duplicated, and running workloads are adopted rather than restarted.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import type { ObservedWorkload } from '../../drivers/contract.ts';
import type { BlueprintStatus, ZoneEvent } from '../../appliance/types.ts';
import { waitFor } from '../helpers/wait.ts';
import { startApplianceChild } from './fixtures/child-control.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-durability-'));
const engineState = join(dir, 'fake-engine.json');
const children = new Set<ChildProcess>();
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const startChild = () => startApplianceChild({ ZONE_DATA_DIR: join(dir, 'node'), FAKE_ENGINE_STATE: engineState, FAKE_ENSURE_DELAY_MS: '100' }, children);

const engine = (): ObservedWorkload[] => existsSync(engineState) ? JSON.parse(readFileSync(engineState, 'utf8')) as ObservedWorkload[] : [];
const box = (name: string, env: Record<string, string> = {}) => ({ name, kind: 'container' as const, image: 'zone/busybox', env });

t.test('SIGKILL at several points of a deployment loses and duplicates nothing', async (t) => {
  let node = await startChild();
  const operator = readSigningKey(join(dir, 'node', 'operator.key'));
  const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: node.ready, ...bp } as Blueprint, operator.secretKey);
  /** What has been acknowledged: name -> latest version and the workloads it wants. */
  const acked = new Map<string, { version: number; deleted: boolean; workloads: string[] }>();

  async function submitThenKill(bp: Partial<Blueprint>, when: () => boolean, point: string): Promise<void> {
    const answer = await node.send({ submit: sign(bp) });
    t.match(answer, { accepted: { name: bp.name, version: bp.version } }, `${bp.name} v${bp.version} accepted`);
    acked.set(bp.name!, { version: bp.version!, deleted: bp.delete ?? false, workloads: (bp.workloads ?? []).map((w) => w.name) });
    await waitFor(when, { timeoutMs: 20_000, what: point });
    await node.kill();
  }

  async function restartAndCheck(point: string): Promise<void> {
    const before = new Map(engine().map((w) => [w.id, w]));
    node = await startChild();
    const want = [...acked].flatMap(([bp, a]) => (a.deleted ? [] : a.workloads.map((w) => `${bp}/${w}`))).sort();
    const status = await waitFor(async () => {
      const s = (await node.send({ status: true })).status as { blueprints: BlueprintStatus[]; events: ZoneEvent[] };
      const running = s.blueprints.flatMap((b) => b.workloads.filter((w) => w.state === 'running').map((w) => `${b.name}/${w.workload}`)).sort();
      const inEngine = engine().filter((w) => w.state === 'running').map((w) => `${w.blueprint}/${w.workload}`).sort();
      return JSON.stringify(running) === JSON.stringify(want) && JSON.stringify(inEngine) === JSON.stringify(want) && engine().length === want.length && s;
    }, { timeoutMs: 30_000, what: `convergence after a kill ${point}` });
    for (const [name, a] of acked) {
      t.match(status.blueprints.find((b) => b.name === name), { version: a.version, deleted: a.deleted }, `${point}: ${name} v${a.version} is there`);
    }
    t.equal(status.blueprints.length, acked.size, `${point}: one stored blueprint per name`);
    const accepts = status.events.filter((e) => e.workload === null).map((e) => `${e.blueprint}:${e.to}`);
    t.equal(new Set(accepts).size, accepts.length, `${point}: each acceptance recorded once`);
    const seqs = status.events.map((e) => e.seq);
    t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `${point}: event seqs keep increasing across restarts`);
    for (const w of engine()) {
      const old = before.get(w.id);
      if (old?.state === 'running' && old.specHash === w.specHash) t.equal(w.startedAt, old.startedAt, `${point}: ${w.blueprint}/${w.workload} adopted, not restarted`);
    }
  }

  await submitThenKill({ name: 'alpha', version: 1, workloads: [box('a'), box('b')] }, () => true, 'right after the acknowledgement');
  await restartAndCheck('right after the acknowledgement');

  await submitThenKill({ name: 'beta', version: 1, workloads: [box('x'), box('y'), box('z')] },
    () => engine().some((w) => w.blueprint === 'beta'), 'in the middle of creating its workloads');
  await restartAndCheck('in the middle of creating');

  await submitThenKill({ name: 'alpha', version: 2, workloads: [box('a', { V: '2' })] }, () => true, 'right after accepting a new version');
  await restartAndCheck('right after a new version');

  await submitThenKill({ name: 'beta', version: 2, delete: true },
    () => engine().filter((w) => w.blueprint === 'beta').length < 3, 'in the middle of a tombstone removal');
  await restartAndCheck('in the middle of a removal');

  await submitThenKill({ name: 'gamma', version: 1, workloads: [box('g')] },
    () => engine().some((w) => w.blueprint === 'gamma' && w.state === 'running'), 'once it runs');
  await restartAndCheck('once it runs');

  t.equal((await node.send({ submit: sign({ name: 'alpha', version: 2, workloads: [box('a')] }) })).error !== undefined, true, 'a replay after all this is still refused');
  await node.kill();
});
