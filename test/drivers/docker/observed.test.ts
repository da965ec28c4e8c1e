// Engine data -> ObservedWorkload: only well-formed containers with our labels count.
import t from 'tap';
import { LABELS } from '../../../drivers/docker/spec.ts';
import { identityOf, observedOf } from '../../../drivers/docker/observed.ts';
import { legacyWorkloadId, workloadId } from '../../../drivers/names.ts';

const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;
const HASH = 'a'.repeat(64);
const labels = { [LABELS.node]: 'node1', [LABELS.owner]: OWNER, [LABELS.blueprint]: 'shop', [LABELS.workload]: 'web', [LABELS.specHash]: HASH };
const NAME = workloadId('node1', OWNER, 'shop', 'web');

function inspectOf(state: Record<string, unknown>, extraLabels: Record<string, string> | null = labels) {
  return {
    Name: `/${NAME}`,
    Config: { Labels: extraLabels },
    State: { Status: 'running', ExitCode: 0, StartedAt: '2026-11-23T09:00:00.1Z', FinishedAt: '0001-01-01T00:00:00Z', OOMKilled: false, ...state },
  };
}

t.test('a running container of ours', async (t) => {
  t.same(observedOf(inspectOf({})), {
    node: 'node1', owner: OWNER, blueprint: 'shop', workload: 'web', specHash: HASH,
    id: NAME, kind: 'container', state: 'running', exitCode: null,
    startedAt: '2026-11-23T09:00:00.1Z', finishedAt: null, health: null, oomKilled: false,
  });
});

t.test('the main process of a running container is its pid (how networks join it); an exited one has none', async (t) => {
  t.equal(observedOf(inspectOf({ Pid: 4242 }))?.pid, 4242);
  t.equal(observedOf(inspectOf({ Status: 'exited', Pid: 0 }))?.pid, undefined);
  t.equal(observedOf(inspectOf({ Pid: -1 })), null, 'a negative pid is not Docker data');
});

t.test('an exited, OOM-killed, unhealthy one', async (t) => {
  const o = observedOf(inspectOf({ Status: 'exited', ExitCode: 137, OOMKilled: true, FinishedAt: '2026-11-23T09:01:00Z', Health: { Status: 'unhealthy' } }));
  t.match(o, { state: 'exited', exitCode: 137, oomKilled: true, finishedAt: '2026-11-23T09:01:00Z', health: 'unhealthy' });
});

t.test('Docker states map onto the contract\'s', async (t) => {
  for (const [status, state] of [['created', 'created'], ['paused', 'paused'], ['dead', 'exited'], ['removing', 'exited'], ['restarting', 'running']] as const) {
    t.equal(observedOf(inspectOf({ Status: status }))?.state, state, status);
  }
});

t.test('containers that are not ours are skipped', async (t) => {
  t.equal(observedOf(inspectOf({}, null)), null, 'no labels');
  t.equal(observedOf(inspectOf({}, { ...labels, [LABELS.owner]: 'someone' })), null, 'forged owner');
  t.equal(observedOf(inspectOf({}, { ...labels, [LABELS.specHash]: 'x' })), null, 'malformed hash');
  const { [LABELS.workload]: _w, ...partial } = labels;
  t.equal(observedOf(inspectOf({}, partial)), null, 'a label missing');
  t.equal(observedOf({ ...inspectOf({}), Name: '/Bad_Name' }), null, 'a name no engine makes');
  t.equal(observedOf({ Name: 'x' }), null, 'not the shape of an inspect');
  t.equal(observedOf({ ...inspectOf({}), Name: `/${workloadId('node1', OWNER, 'shop', 'other')}` }), null, 'labels of a workload on a container named for another');
  t.equal(observedOf({ ...inspectOf({}), Name: '/zone-shop-web-0123abcd' }), null, 'labels on a name that is not derived from them');
  t.equal(observedOf(null), null);
});

t.test('a container an older appliance named (32-bit hash) is still ours, so that an upgrade replaces it', async (t) => {
  const legacy = legacyWorkloadId('node1', OWNER, 'shop', 'web');
  t.match(observedOf({ ...inspectOf({}), Name: `/${legacy}` }), { id: legacy, workload: 'web' });
});

t.test('identityOf reads the labels', async (t) => {
  t.same(identityOf(labels), { node: 'node1', owner: OWNER, blueprint: 'shop', workload: 'web', specHash: HASH });
  t.equal(identityOf('labels'), null);
});
