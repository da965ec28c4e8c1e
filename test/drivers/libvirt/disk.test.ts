// A disk image kind: the driver boots the root disk volume the engine gives it (a qcow2
// overlay over the base, made by the volume provider), and remove() leaves that volume
// and the base alone (booting the blank disk is not the point here; disk-volumes.test.ts
// boots a real one).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { rootVolumeOf } from '../../../drivers/libvirt/spec.ts';
import { volumeId, workloadId } from '../../../drivers/names.ts';
import { backingFileOf } from '../../../drivers/volumes/disk-image.ts';
import { HostVolumes } from '../../../drivers/volumes/provider.ts';

const NODE = `lvdisk-${randomBytes(3).toString('hex')}`;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const dataDir = mkdtempSync('/var/tmp/zone-lvdisk-');
chmodSync(dataDir, 0o711);
const volumes = new HostVolumes(join(dataDir, 'volumes'), NODE);
const ids: string[] = [];
t.teardown(async () => {
  for (const id of ids) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dataDir, { recursive: true, force: true });
});

function spec(workload: string, w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', image: '/nonexistent', resources: { memory: '64Mi' }, ...w } as Workload);
  const id = workloadId(NODE, OWNER, 'lvdisk', workload);
  ids.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'lvdisk', workload, id, specHash: specHash(definition), definition };
}

for (const format of ['raw', 'qcow2'] as const) {
  t.test(`a ${format} base: the VM boots its root disk volume, which outlives the domain`, async (t) => {
    const base = join(dataDir, `base.${format}`);
    execFileSync('qemu-img', ['create', '-q', '-f', format, base, '16M']);
    chmodSync(base, 0o644);
    const driver = new LibvirtDriver({ node: NODE, dataDir, openSecret: () => '' }, { removeGraceMs: 0 });
    t.teardown(() => driver.close());
    const s = spec(`disk-${format}`, { image: base, resources: { memory: '64Mi', disk: '32Mi' } });
    const name = rootVolumeOf(s.definition)!;
    const root = await volumes.ensure({ node: NODE, owner: OWNER, blueprint: 'lvdisk', volume: name, id: volumeId(NODE, OWNER, 'lvdisk', name), kind: 'block', sizeBytes: s.definition.diskBytes, base });
    await driver.ensure({ ...s, volumePaths: { [name]: root.path! } });
    t.equal(await backingFileOf(root.path!), base, 'the base is the backing file');
    t.equal(root.sizeBytes, 32 * 1024 * 1024, 'grown to the disk the spec asks for');
    t.match(execFileSync('virsh', ['-c', 'qemu:///system', 'domblklist', s.id], { encoding: 'utf8' }), root.path!);
    await driver.remove(s.id);
    t.ok(existsSync(root.path!), 'the root disk stays when the domain goes');
    t.ok(existsSync(base), 'base kept');
  });
}

t.test('without its root disk volume, a disk-image VM is a spec error on image', async (t) => {
  const driver = new LibvirtDriver({ node: NODE, dataDir, openSecret: () => '' });
  t.teardown(() => driver.close());
  await t.rejects(driver.ensure(spec('missing', { image: join(dataDir, 'nope.qcow2') })), { code: 'WORKLOAD_SPEC', field: 'image', message: /root disk/ });
});
