import t from 'tap';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { attachmentsOf, networkSpecsOf } from '../../../drivers/wireguard/specs.ts';

const owner = 'ed25519:' + Buffer.alloc(32, 3).toString('base64');
const bp: Blueprint = {
  name: 'app', version: 1, owner, node: 'node1',
  networks: [{ name: 'mesh', subnet: '10.88.1.0/24' }, { name: 'lan', subnet: '10.77.0.0/24' }],
  workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'lan', ip: '10.77.0.5' }] }],
};

t.test('each declared network becomes a spec named by node, owner, blueprint and network', async (t) => {
  const specs = networkSpecsOf(bp, 'node1');
  t.same(specs.map((s) => [s.network, s.owner, s.blueprint, s.node]), [['mesh', owner, 'app', 'node1'], ['lan', owner, 'app', 'node1']]);
  t.match(specs[0]!.id, /^zn-[0-9a-f]{32}$/, '128 bits of the identity\'s hash');
  t.not(specs[0]!.id, networkSpecsOf(bp, 'node2')[0]!.id, 'another node, another namespace');
  t.not(specs[0]!.id, networkSpecsOf({ ...bp, owner: 'ed25519:' + Buffer.alloc(32, 4).toString('base64') }, 'node1')[0]!.id, 'another owner, another namespace');
});

t.test('a workload\'s attachments pair its declared IPs with the network specs', async (t) => {
  const a = attachmentsOf(bp, 'node1', 'web');
  t.same(a.map((x) => [x.spec.network, x.ip]), [['lan', '10.77.0.5']]);
  t.same(attachmentsOf(bp, 'node1', 'nope'), []);
});
