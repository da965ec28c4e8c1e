// planVolumes as a table: every row is desired volumes, what the provider has and the
// time, and the steps that follow.
import t from 'tap';
import type { ObservedVolume, VolumeSpec } from '../../../drivers/contract.ts';
import { blueprintKey, desiredVolumes, planVolumes, type VolumeStep } from '../../../appliance/engine/volumes.ts';
import type { StoredBlueprint } from '../../../appliance/store.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { volumeId } from '../../../drivers/names.ts';

const MIB = 2 ** 20;
const HOUR = 3_600_000;
const owner = 'ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const now = new Date('2026-11-29T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();

const spec = (volume: string, over: Partial<VolumeSpec> = {}): VolumeSpec => ({
  node: 'n1', owner, blueprint: 'db', volume, id: volumeId('n1', owner, 'db', volume), kind: 'filesystem', sizeBytes: 64 * MIB, ...over,
});
const observed = (volume: string, over: Partial<ObservedVolume> = {}): ObservedVolume => {
  const { id, node, blueprint, kind, sizeBytes } = spec(volume);
  return { id, node, owner, blueprint, volume, kind, sizeBytes, path: `/data/${id}/mnt`, releasedAt: null, ...over };
};
const kinds = (steps: VolumeStep[]) => steps.map((s) => `${s.kind} ${'spec' in s ? s.spec.volume : s.identity.volume}`);

const rows: { name: string; desired: VolumeSpec[]; observed: ObservedVolume[]; holders?: string[]; expect: string[] }[] = [
  { name: 'a volume that is there, mounted and of its size plans nothing', desired: [spec('data')], observed: [observed('data')], expect: [] },
  { name: 'a new volume is created', desired: [spec('data')], observed: [], expect: ['volume-create data'] },
  { name: 'a larger size grows it', desired: [spec('data', { sizeBytes: 128 * MIB })], observed: [observed('data')], expect: ['volume-grow data'] },
  { name: 'a smaller size is refused, not shrunk', desired: [spec('data', { sizeBytes: 32 * MIB })], observed: [observed('data')], expect: ['volume-refuse data'] },
  { name: 'another kind is refused', desired: [spec('data', { kind: 'block' })], observed: [observed('data')], expect: ['volume-refuse data'] },
  { name: 'one not mounted (after a reboot) is mounted', desired: [spec('data')], observed: [observed('data', { path: null })], expect: ['volume-mount data'] },
  { name: 'one no longer listed is released (its deletion scheduled)', desired: [], observed: [observed('old')], expect: ['volume-release old'] },
  { name: 'a released one within its retention is kept', desired: [], observed: [observed('old', { releasedAt: ago(HOUR) })], expect: ['volume-keep old'] },
  { name: 'a released one past its retention is deleted', desired: [], observed: [observed('old', { releasedAt: ago(25 * HOUR) })], expect: ['volume-delete old'] },
  {
    name: 'past its retention but a workload of its blueprint is still going: kept',
    desired: [], observed: [observed('old', { releasedAt: ago(25 * HOUR) })], holders: [blueprintKey({ owner, blueprint: 'db' })], expect: ['volume-keep old'],
  },
  { name: 'listed again within its retention: reclaimed, its data returns', desired: [spec('data')], observed: [observed('data', { releasedAt: ago(HOUR) })], expect: ['volume-reclaim data'] },
  {
    name: 'a VM\'s root disk asks for less than it has (its image is larger): a floor, nothing to do',
    desired: [spec('vm.root-0123456789abcdef', { kind: 'block', sizeBytes: 0, base: '/images/a.qcow2' })],
    observed: [observed('vm.root-0123456789abcdef', { kind: 'block', sizeBytes: 2 * 1024 * MIB })],
    expect: [],
  },
  {
    name: 'a VM\'s root disk asks for more than it has: grown',
    desired: [spec('vm.root-0123456789abcdef', { kind: 'block', sizeBytes: 4 * 1024 * MIB, base: '/images/a.qcow2' })],
    observed: [observed('vm.root-0123456789abcdef', { kind: 'block', sizeBytes: 2 * 1024 * MIB })],
    expect: ['volume-grow vm.root-0123456789abcdef'],
  },
  {
    name: 'another owner\'s volume of the same name is another volume',
    desired: [spec('data')],
    observed: [observed('data'), { ...observed('data'), owner: 'ed25519:BBBB', id: volumeId('n1', 'ed25519:BBBB', 'db', 'data') }],
    expect: ['volume-release data'],
  },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const steps = planVolumes(row.desired, row.observed, now, 24 * HOUR, { holders: new Set(row.holders ?? []) });
    t.same(kinds(steps), row.expect);
  });
}

t.test('a release schedules the deletion one retention period from now; a kept one says until when', async (t) => {
  const [release] = planVolumes([], [observed('old')], now, 2 * HOUR);
  t.same(release?.kind === 'volume-release' && release.until, new Date(now.getTime() + 2 * HOUR));
  const [keep] = planVolumes([], [observed('old', { releasedAt: ago(HOUR) })], now, 2 * HOUR);
  t.same(keep?.kind === 'volume-keep' && keep.until, new Date(now.getTime() + HOUR));
});

t.test('desired volumes: those of live blueprints, scoped by owner and blueprint, default kind filesystem, sizes in bytes', async (t) => {
  const stored = (name: string, o: string, doc: Partial<Blueprint>, deleted = false): StoredBlueprint => ({
    owner: o, name, version: 1, deleted, acceptedAt: now.toISOString(),
    document: { name, version: 1, owner: o, node: 'n1', ...doc } as Blueprint,
  });
  const specs = desiredVolumes('n1', [
    stored('db', owner, { volumes: [{ name: 'data', size: '1Gi' }, { name: 'disk', size: '64Mi', kind: 'block' }] }),
    stored('db', 'ed25519:BBBB', { volumes: [{ name: 'data', size: '1Gi' }] }),
    stored('gone', owner, { volumes: [] }, true),
  ]);
  t.same(specs.map((s) => [s.owner, s.volume, s.kind, s.sizeBytes]), [[owner, 'data', 'filesystem', 2 ** 30], [owner, 'disk', 'block', 64 * MIB], ['ed25519:BBBB', 'data', 'filesystem', 2 ** 30]]);
  t.not(specs[0]?.id, specs[2]?.id, 'two owners\' volumes of one name have different ids');
  t.match(specs[0]?.id, /^zv-[0-9a-f]{32}$/);
});

t.test('a disk-image VM\'s root disk is a block volume of its blueprint, named after the workload and its image, sized by resources.disk', async (t) => {
  const stored = (version: number, image: string, disk?: string): StoredBlueprint => ({
    owner, name: 'vms', version, deleted: false, acceptedAt: now.toISOString(),
    document: {
      name: 'vms', version, owner, node: 'n1', workloads: [
        { name: 'os', kind: 'vm', image, ...(disk ? { resources: { disk } } : {}) },
        { name: 'box', kind: 'vm', image: 'zone/busybox' },
        { name: 'web', kind: 'container', image: 'zone/busybox' },
      ],
    } as Blueprint,
  });
  const [root, ...more] = desiredVolumes('n1', [stored(1, '/images/a.qcow2', '2Gi')]);
  t.same(more, [], 'a VM booted from a container image (an initrd) and a container have none');
  t.match(root, { volume: /^os\.root-[0-9a-f]{16}$/, kind: 'block', sizeBytes: 2 * 1024 * MIB, base: '/images/a.qcow2' });
  t.equal(desiredVolumes('n1', [stored(2, '/images/a.qcow2')])[0]?.id, root?.id, 'a new version of the VM (here: no disk size) keeps it');
  t.not(desiredVolumes('n1', [stored(2, '/images/b.qcow2')])[0]?.id, root?.id, 'another image is another root disk');
  t.same(desiredVolumes('n1', [{ ...stored(3, '/images/a.qcow2'), deleted: true }]), [], 'a tombstone lists none: it is released');
});
