import t from 'tap';
import { workloadId } from '../../../drivers/names.ts';
import { planNetworks } from '../../../appliance/engine/networks.ts';
import type { StoredBlueprint } from '../../../appliance/store.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import type { ObservedWorkload } from '../../../drivers/contract.ts';
import { networkId } from '../../../drivers/wireguard/names.ts';

const NODE = 'node1';
const OWNER = 'ed25519:' + 'A'.repeat(43) + '=';
const mesh = { name: 'mesh', subnet: '10.88.1.0/24', ipRange: '10.88.0.0/16', wireguard: { privateKey: 'sealed:x', listenPort: 51820, peers: [] } };

function stored(name: string, extra: Partial<Blueprint> = {}, deleted = false): StoredBlueprint {
  const document = {
    name, version: 1, owner: OWNER, node: NODE, networks: [mesh],
    workloads: [
      { name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.10' }] },
      { name: 'solo', kind: 'container', image: 'zone/busybox' },
    ],
    ...extra,
  } as Blueprint;
  return { owner: OWNER, name, version: 1, deleted, document, acceptedAt: '2026-06-01T00:00:00Z' };
}

function running(blueprint: string, workload: string, pid: number | undefined, state: ObservedWorkload['state'] = 'running'): [string, ObservedWorkload] {
  const id = workloadId(NODE, OWNER, blueprint, workload);
  return [id, {
    id, node: NODE, owner: OWNER, blueprint, workload, kind: 'container', specHash: 'h', state, exitCode: null,
    startedAt: null, finishedAt: null, health: null, oomKilled: false, ...(pid ? { pid } : {}),
  }];
}

const meshId = (blueprint: string) => networkId({ node: NODE, owner: OWNER, blueprint, network: 'mesh' });

t.test('a live blueprint\'s network is ensured and its running container joined with its declared IP', async (t) => {
  const plan = planNetworks(NODE, [stored('app')], [], new Map([running('app', 'web', 4242), running('app', 'solo', 4343)]));
  t.same(plan.ensure.map((s) => [s.id, s.network, s.definition.subnet]), [[meshId('app'), 'mesh', '10.88.1.0/24']]);
  t.same(plan.remove, []);
  t.same(plan.attach.map((a) => [a.spec.id, a.container]), [[meshId('app'), { workload: 'web', pid: 4242, ip: '10.88.1.10' }]], 'only the workload that names the network');
});

t.test('a VM that names a network gets its bridge whether or not it runs yet', async (t) => {
  const bp = stored('app', { workloads: [{ name: 'box', kind: 'vm', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.20' }] }] });
  const plan = planNetworks(NODE, [bp], [], new Map());
  t.same(plan.attachVm.map((a) => [a.spec.id, a.vm]), [[meshId('app'), { workload: 'box', ip: '10.88.1.20' }]]);
  t.same(plan.attach, [], 'VMs are not joined like containers');
});

t.test('a container that does not run (or has no pid yet) is not joined', async (t) => {
  t.same(planNetworks(NODE, [stored('app')], [], new Map([running('app', 'web', 4242, 'exited')])).attach, []);
  t.same(planNetworks(NODE, [stored('app')], [], new Map([running('app', 'web', undefined)])).attach, []);
  t.same(planNetworks(NODE, [stored('app')], [], new Map()).attach, []);
});

t.test('networks no live blueprint declares are removed; a tombstone removes its blueprint\'s', async (t) => {
  const plan = planNetworks(NODE, [stored('app'), stored('gone', {}, true)], [meshId('app'), meshId('gone'), 'zn-00000000'], new Map([running('gone', 'web', 77)]));
  t.same(plan.ensure.map((s) => s.id), [meshId('app')]);
  t.same(plan.remove, [meshId('gone'), 'zn-00000000']);
  t.same(plan.attach, [], 'a deleted blueprint\'s container is not joined');
});

t.test('two blueprints declaring a network of the same name get separate networks', async (t) => {
  const plan = planNetworks(NODE, [stored('a'), stored('b')], [], new Map([running('a', 'web', 1), running('b', 'web', 2)]));
  t.equal(new Set(plan.ensure.map((s) => s.id)).size, 2);
  t.same(plan.attach.map((a) => [a.spec.blueprint, a.container.pid]), [['a', 1], ['b', 2]]);
});

t.test('a blueprint without networks plans nothing', async (t) => {
  t.same(planNetworks(NODE, [stored('plain', { networks: [], workloads: [{ name: 'x', kind: 'container', image: 'zone/busybox' }] })], [], new Map([running('plain', 'x', 5)])),
    { ensure: [], remove: [], attach: [], attachVm: [] });
});
