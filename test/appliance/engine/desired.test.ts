import t from 'tap';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { desiredOf, networkSpecsOf } from '../../../appliance/engine/desired.ts';
import { workloadId } from '../../../drivers/names.ts';

const owner = 'ed25519:' + Buffer.alloc(32, 3).toString('base64');
const bp: Blueprint = {
  name: 'app', version: 1, owner, node: 'node1',
  networks: [{ name: 'mesh', subnet: '10.88.1.0/24' }, { name: 'lan', subnet: '10.77.0.0/24' }],
  workloads: [
    { name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'lan', ip: '10.77.0.5' }] },
    { name: 'sink', kind: 'container', image: 'zone/busybox' },
  ],
  pipes: [{ from: 'web.stdout', to: 'sink.stdin' }, { from: 'sink.stdout', to: 'n2/other/x.stdin' }],
};
const stored = (document: Blueprint, deleted = false) => ({ owner, name: document.name, version: document.version, deleted, document, acceptedAt: '2026-06-01T00:00:00Z' });

t.test('each declared network becomes a spec named by node, owner, blueprint and network', async (t) => {
  const specs = networkSpecsOf(bp, 'node1');
  t.same(specs.map((s) => [s.network, s.owner, s.blueprint, s.node]), [['mesh', owner, 'app', 'node1'], ['lan', owner, 'app', 'node1']]);
  t.match(specs[0]!.id, /^zn-[0-9a-f]{32}$/, '128 bits of the identity\'s hash');
  t.not(specs[0]!.id, networkSpecsOf(bp, 'node2')[0]!.id, 'another node, another namespace');
  t.not(specs[0]!.id, networkSpecsOf({ ...bp, owner: 'ed25519:' + Buffer.alloc(32, 4).toString('base64') }, 'node1')[0]!.id, 'another owner, another namespace');
});

t.test('a stored blueprint wants its workloads, its networks and its pipe ends here, each end with its workload\'s id and kind', async (t) => {
  const d = desiredOf('node1', stored(bp));
  t.same(d.workloads.map((w) => [w.workload, w.definition.stdin ?? null, w.definition.stdout ?? null]), [['web', null, 'pipe'], ['sink', 'pipe', 'pipe']], 'which streams are piped is in the definition');
  t.same(d.networks.map((n) => n.network), ['mesh', 'lan']);
  t.same(d.pipeEnds.map((e) => [e.role, e.workload, e.workloadId, e.kind]), [
    ['produce', 'web', workloadId('node1', owner, 'app', 'web'), 'container'],
    ['consume', 'sink', workloadId('node1', owner, 'app', 'sink'), 'container'],
    ['produce', 'sink', workloadId('node1', owner, 'app', 'sink'), 'container'],
  ], 'the ends local to this node, the remote one left to its node');
});

t.test('a tombstone wants nothing', async (t) => {
  t.same(desiredOf('node1', stored(bp, true)), { workloads: [], networks: [], pipeEnds: [] });
});
