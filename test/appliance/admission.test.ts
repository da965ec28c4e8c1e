import t, { type Test } from 'tap';
import { admitBlueprint, capacityView, checkPolicy, checkVolumeSizes, demandOf, GIB, nodeReserve, type NodePolicy } from '../../appliance/admission.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { Blueprint } from '../../blueprints/schema.ts';

const OWNER = 'ed25519:' + 'A'.repeat(43) + '=';
const OTHER = 'ed25519:' + 'B'.repeat(43) + '=';
const NO: NodePolicy = { privileged: false, hostNetwork: false, hostMounts: [], devices: [], capabilities: [], vmImages: [] };
const TOTAL = { cpus: 4, memoryBytes: 16 * GIB, diskBytes: 100 * GIB };
const OVER = { cpu: 1, memory: 1, disk: 1 };

const bp = (name: string, workloads: Blueprint['workloads'], extra: Partial<Blueprint> = {}): Blueprint =>
  ({ name, version: 1, owner: OWNER, node: 'n1', workloads, ...extra });
const box = (name: string, memory: string, extra: Record<string, unknown> = {}) =>
  ({ name, kind: 'container' as const, image: 'zone/busybox', resources: { memory, cpus: 0.5 }, ...extra });

function refusal(t: Test, fn: () => void, code: string, field: string): ZoneError | undefined {
  try {
    fn();
  } catch (err) {
    t.type(err, ZoneError);
    t.equal((err as ZoneError).code, code);
    t.equal((err as ZoneError).field, field);
    return err as ZoneError;
  }
  t.fail('expected a refusal');
  return undefined;
}

t.test('the node keeps the larger of 10 % and 2 GiB of memory', async (t) => {
  t.equal(nodeReserve({ cpus: 1, memoryBytes: 8 * GIB, diskBytes: 0 }).memoryBytes, 2 * GIB);
  t.equal(nodeReserve({ cpus: 1, memoryBytes: 64 * GIB, diskBytes: 0 }).memoryBytes, Math.round(6.4 * GIB));
  t.equal(nodeReserve({ cpus: 1, memoryBytes: GIB, diskBytes: 0 }).memoryBytes, GIB, 'never more than the node has');
});

t.test('demand sums the normalised workloads (defaults included); a tombstone demands nothing', async (t) => {
  const b = bp('a', [box('x', '1Gi'), { name: 'y', kind: 'container', image: 'i' }, { name: 'v', kind: 'vm', image: 'd', vcpus: 2, resources: { disk: '10Gi' } }]);
  t.same(demandOf(b), { cpus: 0.5 + 1 + 2, memoryBytes: GIB + 128 * 2 ** 20 + 256 * 2 ** 20, diskBytes: 10 * GIB });
  t.same(demandOf({ ...b, delete: true }), { cpus: 0, memoryBytes: 0, diskBytes: 0 });
});

t.test('free = total × overcommit − node reserve − admitted blueprints', async (t) => {
  const v = capacityView(TOTAL, { cpu: 2, memory: 1, disk: 1 }, [bp('a', [box('x', '4Gi')]), bp('gone', [box('x', '4Gi')], { delete: true })]);
  t.same(v.free, { cpus: 8 - 0.5, memoryBytes: 16 * GIB - 2 * GIB - 4 * GIB, diskBytes: 100 * GIB });
  t.equal(v.blueprints, 1, 'tombstones reserve nothing');
});

t.test('a blueprint that does not fit is refused with the numbers', async (t) => {
  const admitted = [bp('a', [box('x', '8Gi')])];
  const err = refusal(t, () => admitBlueprint(bp('b', [box('y', '7Gi')]), { total: TOTAL, overcommit: OVER, policy: NO, admitted }), 'CAPACITY', '/workloads');
  t.match(err?.message, /needs memory 7\.0 GiB, the node has 6\.0 GiB free \(total 16\.0 GiB, kept for the node 2\.0 GiB, reserved by 1 other blueprint\(s\) 8\.0 GiB\)/);
  t.match(err?.details, { resource: 'memory', requested: 7 * GIB, free: 6 * GIB });
  t.doesNotThrow(() => admitBlueprint(bp('b', [box('y', '6Gi')]), { total: TOTAL, overcommit: OVER, policy: NO, admitted }), 'exactly what is free fits');
});

t.test('cpus and disk are checked too', async (t) => {
  refusal(t, () => admitBlueprint(bp('c', [box('y', '1Mi', { resources: { cpus: 5 } })]), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [] }), 'CAPACITY', '/workloads');
  refusal(t, () => admitBlueprint(bp('d', [box('y', '1Mi', { resources: { disk: '101Gi' } })]), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [] }), 'CAPACITY', '/workloads');
});

t.test('a new version replaces its older one in the arithmetic', async (t) => {
  const admitted = [bp('a', [box('x', '10Gi')])];
  t.doesNotThrow(() => admitBlueprint({ ...bp('a', [box('x', '12Gi')]), version: 2 }, { total: TOTAL, overcommit: OVER, policy: NO, admitted }));
  refusal(t, () => admitBlueprint({ ...bp('a', [box('x', '12Gi')]), owner: OTHER }, { total: TOTAL, overcommit: OVER, policy: NO, admitted }), 'CAPACITY', '/workloads');
});

t.test('host ports and WireGuard listen ports may not collide', async (t) => {
  const wg = (port: number) => ({ name: 'mesh', subnet: '10.88.1.0/24', wireguard: { privateKey: 'sealed:AAAA', listenPort: port, peers: [] } });
  const admitted = [bp('a', [box('x', '1Mi', { ports: [{ container: 80, host: 8080 }] })], { networks: [wg(51820)] })];
  const ctx = { total: TOTAL, overcommit: OVER, policy: NO, admitted };
  const err = refusal(t, () => admitBlueprint(bp('b', [box('y', '1Mi', { ports: [{ container: 80, host: 8080 }] })]), ctx), 'CAPACITY', '/workloads/0/ports/0/host');
  t.match(err?.message, /tcp\/8080 is already used by blueprint a/);
  refusal(t, () => admitBlueprint(bp('b', [], { networks: [wg(51820)] }), ctx), 'CAPACITY', '/networks/0/wireguard/listenPort');
  t.doesNotThrow(() => admitBlueprint(bp('b', [box('y', '1Mi', { ports: [{ container: 80, host: 8080, protocol: 'udp' }] })]), ctx), 'udp/8080 is another port');
  refusal(t, () => admitBlueprint(bp('c', [box('y', '1Mi', { ports: [{ container: 1, host: 9000 }, { container: 2, host: 9000 }] })]), ctx), 'INVALID', '/workloads/0/ports/1/host');
  t.doesNotThrow(() => admitBlueprint({ ...admitted[0]!, version: 2 }, ctx), 'a new version keeps its own ports');
});

t.test('risky settings are refused unless the node policy allows them', async (t) => {
  const risky = (extra: Record<string, unknown>) => bp('r', [box('w', '1Mi', extra)]);
  refusal(t, () => checkPolicy(risky({ privileged: true }), NO), 'POLICY', '/workloads/0/privileged');
  refusal(t, () => checkPolicy(risky({ hostNetwork: true }), NO), 'POLICY', '/workloads/0/hostNetwork');
  refusal(t, () => checkPolicy(risky({ mounts: [{ source: '/etc', target: '/x' }] }), NO), 'POLICY', '/workloads/0/mounts/0/source');
  refusal(t, () => checkPolicy(risky({ devices: ['/dev/kvm'] }), NO), 'POLICY', '/workloads/0/devices/0');
  refusal(t, () => checkPolicy(risky({ capabilities: ['NET_ADMIN'] }), NO), 'POLICY', '/workloads/0/capabilities/0');
  const yes: NodePolicy = { privileged: true, hostNetwork: true, hostMounts: ['/srv/data'], devices: ['/dev/kvm'], capabilities: ['NET_ADMIN'], vmImages: [] };
  t.doesNotThrow(() => checkPolicy(risky({ privileged: true, hostNetwork: true, mounts: [{ source: '/srv/data/a', target: '/x' }], devices: ['/dev/kvm'], capabilities: ['NET_ADMIN'] }), yes));
  refusal(t, () => checkPolicy(risky({ mounts: [{ source: '/srv/data/../../etc', target: '/x' }] }), yes), 'POLICY', '/workloads/0/mounts/0/source');
  refusal(t, () => checkPolicy(risky({ mounts: [{ source: '/srv/database', target: '/x' }] }), yes), 'POLICY', '/workloads/0/mounts/0/source');
});

t.test('a VM boots an image the node holds; a host path only under policy.vmImages', async (t) => {
  const vm = (image: string) => bp('v', [{ name: 'vm', kind: 'vm', image, resources: { memory: '64Mi' } }]);
  t.doesNotThrow(() => checkPolicy(vm('zone/busybox'), NO), 'a local container image');
  const err = refusal(t, () => checkPolicy(vm('/dev/sda'), NO), 'POLICY', '/workloads/0/image');
  t.match(err?.message, /workload vm: the host path \/dev\/sda as a VM image is not allowed .*policy\.vmImages/);
  const images: NodePolicy = { ...NO, vmImages: ['/srv/images'] };
  t.doesNotThrow(() => checkPolicy(vm('/srv/images/debian.qcow2'), images));
  refusal(t, () => checkPolicy(vm('/srv/images/../../dev/sda'), images), 'POLICY', '/workloads/0/image');
  refusal(t, () => checkPolicy(vm('/srv/imagesx/a.qcow2'), images), 'POLICY', '/workloads/0/image');
});

t.test('a tombstone is always admitted', async (t) => {
  t.doesNotThrow(() => admitBlueprint(bp('a', [box('x', '100Gi', { privileged: true })], { delete: true }), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [] }));
});

t.test('volumes count against the disk; a later version may grow a volume but not shrink it or change its kind', async (t) => {
  const withVolume = (size: string, version = 1, kind?: 'block') => bp('db', [], { version, volumes: [{ name: 'data', size, ...(kind ? { kind } : {}) }] });
  t.equal(demandOf(withVolume('10Gi')).diskBytes, 10 * GIB);
  const err = refusal(t, () => admitBlueprint(withVolume('120Gi'), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [] }), 'CAPACITY', '/workloads');
  t.match(err?.message, /needs disk 120\.0 GiB/);
  admitBlueprint(withVolume('20Gi', 2), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [withVolume('10Gi')] });
  const shrink = refusal(t, () => admitBlueprint(withVolume('5Gi', 2), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [withVolume('10Gi')] }), 'INVALID', '/volumes/0/size');
  t.match(shrink?.message, /volume data: size 5Gi is smaller than 10Gi of version 1; a volume grows but never shrinks/);
  refusal(t, () => admitBlueprint(withVolume('10Gi', 2, 'block'), { total: TOTAL, overcommit: OVER, policy: NO, admitted: [withVolume('10Gi')] }), 'INVALID', '/volumes/0/kind');
  t.same(demandOf({ ...withVolume('10Gi'), delete: true, volumes: [] }), { cpus: 0, memoryBytes: 0, diskBytes: 0 }, 'a tombstone holds nothing');
});

t.test('a released volume kept for its retention still counts against the disk until it is deleted', async (t) => {
  const held = (volume: string, size: number, blueprint = 'db', owner = OWNER) => ({ owner, blueprint, volume, kind: 'filesystem' as const, sizeBytes: size });
  const db = (version: number, volumes: Blueprint['volumes'] = []) => bp('db', [], { version, volumes });
  // db v2 dropped `old` (60 GiB, released); `data` is still declared.
  const ctx = { total: TOTAL, overcommit: OVER, policy: NO, admitted: [db(2, [{ name: 'data', size: '10Gi' }])], held: [held('old', 60 * GIB), held('data', 10 * GIB)] };
  const view = capacityView(TOTAL, OVER, ctx.admitted, ctx.held);
  t.equal(view.retainedBytes, 60 * GIB, 'only the volume no blueprint declares is retained');
  t.equal(view.free.diskBytes, 30 * GIB, 'the declared volume is counted once');
  const err = refusal(t, () => admitBlueprint(bp('big', [], { volumes: [{ name: 'v', size: '40Gi' }] }), ctx), 'CAPACITY', '/workloads');
  t.match(err?.message, /the node has 30\.0 GiB free .*reserved by 1 other blueprint\(s\) 10\.0 GiB, kept by released volumes until their retention ends 60\.0 GiB\)/);
  t.doesNotThrow(() => admitBlueprint(bp('big', [], { volumes: [{ name: 'v', size: '40Gi' }] }), { ...ctx, held: [held('data', 10 * GIB)] }), 'fits once it is deleted');
  t.doesNotThrow(() => admitBlueprint(db(3, [{ name: 'data', size: '10Gi' }, { name: 'old', size: '60Gi' }]), ctx), 'listed again, it is counted once: in the blueprint that takes it back');
  // db v3 drops `data` too: admitted (it needs nothing), and `data` still counts for the next one.
  const afterDrop = capacityView(TOTAL, OVER, [], [held('old', 60 * GIB), held('data', 10 * GIB)]);
  t.equal(afterDrop.free.diskBytes, 30 * GIB, 'nothing is freed before the retention ends');
  t.doesNotThrow(() => admitBlueprint(bp('db', [], { owner: OTHER, volumes: [{ name: 'old', size: '10Gi' }] }), { ...ctx, held: [held('old', 20 * GIB)] }), 'another owner\'s volume of that name is another volume');
  const shrink = refusal(t, () => admitBlueprint(db(3, [{ name: 'old', size: '1Gi' }]), ctx), 'INVALID', '/volumes/0/size');
  t.match(shrink?.message, /volume old: size 1Gi is smaller than 60\.0 GiB of the volume kept from an earlier version/);
});

t.test('a VM\'s root disk grows with resources.disk but never shrinks while it boots the same image', async (t) => {
  const os = (disk: string, version: number, image = '/srv/images/a.qcow2') => bp('vms', [{ name: 'os', kind: 'vm', image, resources: { memory: '64Mi', disk } }], { version });
  admitBlueprint(os('4Gi', 2), { total: TOTAL, overcommit: OVER, policy: { ...NO, vmImages: ['/srv/images'] }, admitted: [os('2Gi', 1)] });
  const err = refusal(t, () => checkVolumeSizes(os('1Gi', 2), os('2Gi', 1)), 'INVALID', '/workloads/0/resources/disk');
  t.match(err?.message, /workload os: resources\.disk 1Gi is smaller than 2Gi of version 1; a VM's root disk is a volume that grows but never shrinks/);
  t.doesNotThrow(() => checkVolumeSizes(os('1Gi', 2, '/srv/images/b.qcow2'), os('2Gi', 1)), 'another image starts another root disk');
});

t.test('a volume mount needs no host-mount policy', async (t) => {
  checkPolicy(bp('db', [box('db', '64Mi', { mounts: [{ volume: 'data', target: '/data' }] })], { volumes: [{ name: 'data', size: '1Gi' }] }), NO);
  t.pass('admitted under the default policy');
});
