// The host volume provider against the real tools (mkfs.ext4, mount, losetup, resize2fs,
// qemu-img): made, found again, grown in place, kept through a release, refused a shrink,
// and removed leaving no mount and no loop device behind.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { VolumeSpecError, type VolumeSpec } from '../../../drivers/contract.ts';
import { volumeId } from '../../../drivers/names.ts';
import { HostVolumes } from '../../../drivers/volumes/provider.ts';

const MIB = 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'zone-volumes-'));
const volumes = new HostVolumes(dir, 'n1');
const owner = 'ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const spec = (volume: string, over: Partial<VolumeSpec> = {}): VolumeSpec => ({
  node: 'n1', owner, blueprint: 'db', volume, id: volumeId('n1', owner, 'db', volume), kind: 'filesystem', sizeBytes: 32 * MIB, ...over,
});
const mountsUnder = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));
const loopsUnder = () => execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir));

t.teardown(async () => {
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
});

t.test('a filesystem volume: made and mounted, found again, grown in place with its data, kept through a release, removed without a trace', async (t) => {
  const s = spec('data');
  const made = await volumes.ensure(s);
  t.match(made, { id: s.id, kind: 'filesystem', sizeBytes: 32 * MIB, releasedAt: null, path: join(dir, s.id, 'mnt') });
  writeFileSync(join(made.path!, 'hello'), 'kept');
  t.equal(mountsUnder().length, 1, 'mounted once');
  t.same(await volumes.ensure(s), made, 'ensure again: the same, nothing made twice');
  t.equal(mountsUnder().length, 1);

  const grown = await volumes.ensure({ ...s, sizeBytes: 64 * MIB });
  t.equal(grown.sizeBytes, 64 * MIB);
  const fs = statfsSync(made.path!);
  t.ok(fs.blocks * fs.bsize > 48 * MIB, `the filesystem grew (${fs.blocks * fs.bsize} bytes)`);
  t.equal(readFileSync(join(made.path!, 'hello'), 'utf8'), 'kept');
  t.ok((await volumes.usage(s.id)) > 0, 'usage counts what the filesystem holds');

  await t.rejects(volumes.ensure({ ...s, sizeBytes: 32 * MIB }), VolumeSpecError, 'a shrink is refused');
  await t.rejects(volumes.ensure({ ...s, kind: 'block', sizeBytes: 64 * MIB }), /keeps its kind/);

  const at = new Date('2026-11-29T10:00:00Z');
  await volumes.release(s.id, at);
  t.match(await volumes.inspect(s.id), { releasedAt: at.toISOString() }, 'released: kept with its data');
  t.match(await volumes.ensure({ ...s, sizeBytes: 64 * MIB }), { releasedAt: null }, 'wanted again: the release is cleared');
  t.equal(readFileSync(join(made.path!, 'hello'), 'utf8'), 'kept', 'and its data is there');

  await volumes.remove(s.id);
  t.same(mountsUnder(), [], 'no mount left');
  t.same(loopsUnder(), [], 'no loop device left');
  t.notOk(existsSync(join(dir, s.id)), 'its files are gone');
  t.equal(await volumes.inspect(s.id), null);
});

t.test('a mount gone (a reboot) is made again by ensure with the data; list finds every volume by its folder', async (t) => {
  const s = spec('again');
  const v = await volumes.ensure(s);
  writeFileSync(join(v.path!, 'f'), 'x');
  execFileSync('umount', [v.path!]);
  t.equal((await volumes.inspect(s.id))?.path, null, 'seen as not mounted');
  await volumes.ensure(s);
  t.equal(readFileSync(join(v.path!, 'f'), 'utf8'), 'x');
  t.same((await volumes.list()).map((x) => x.volume), ['again']);
  await volumes.remove(s.id);
});

t.test('a block volume is a qcow2 of its size, grown by qemu-img; two owners\' volumes of one name are two files', async (t) => {
  const s = spec('disk', { kind: 'block', sizeBytes: 16 * MIB });
  const other = { ...s, owner: 'ed25519:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=', id: volumeId('n1', 'ed25519:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=', 'db', 'disk') };
  const a = await volumes.ensure(s);
  const b = await volumes.ensure(other);
  t.not(a.path, b.path);
  const info = (path: string) => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as { format: string; 'virtual-size': number };
  t.match(info(a.path!), { format: 'qcow2', 'virtual-size': 16 * MIB });
  await volumes.ensure({ ...s, sizeBytes: 32 * MIB });
  t.equal(info(a.path!)['virtual-size'], 32 * MIB);
  await volumes.remove(s.id);
  await volumes.remove(other.id);
  t.same(await volumes.list(), []);
});

t.test('a root disk is a qcow2 overlay over its image, at least the image\'s size; it grows, never shrinks below the image, and keeps its image', async (t) => {
  const image = join(dir, 'base.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', image, String(24 * MIB)]);
  const s = spec('os.root-0123456789abcdef', { kind: 'block', sizeBytes: 0, base: image });
  const made = await volumes.ensure(s);
  const info = () => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', made.path!], { encoding: 'utf8' })) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
  t.match(info(), { format: 'qcow2', 'virtual-size': 24 * MIB, 'backing-filename': image });
  t.equal(made.sizeBytes, 24 * MIB, 'its size is the image\'s when it asks for less');
  t.equal((await volumes.ensure(s)).sizeBytes, 24 * MIB, 'asked again for less: nothing changes, nothing is refused');
  t.equal((await volumes.ensure({ ...s, sizeBytes: 40 * MIB })).sizeBytes, 40 * MIB);
  t.equal(info()['virtual-size'], 40 * MIB, 'grown by qemu-img, over its backing file');
  await t.rejects(volumes.ensure({ ...s, base: join(dir, 'other.raw') }), { name: 'VolumeSpecError', field: 'image', message: /overlays .*base.raw, not .*other.raw/ });
  const missing = spec('os.root-fedcba9876543210', { kind: 'block', sizeBytes: 0, base: join(dir, 'missing.qcow2') });
  await t.rejects(volumes.ensure(missing), { name: 'VolumeSpecError', field: 'image', message: /cannot be found/ });
  await volumes.remove(s.id);
  await volumes.remove(missing.id);
  t.ok(existsSync(image), 'the image is never touched');
});

t.test('an id that is not a volume id of this node is refused, and ignored by remove and inspect', async (t) => {
  await t.rejects(volumes.ensure({ ...spec('x'), id: '../etc' }), /not a volume id/);
  await t.rejects(volumes.ensure({ ...spec('x'), node: 'other' }), /not a volume id of node n1/);
  await volumes.remove('../etc');
  t.equal(await volumes.inspect('../../x'), null);
});
