// A disk image kind: each workload gets its own qcow2 overlay backed by the base image,
// removed with the workload (booting the blank disk is not the point here).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { WorkloadSpec } from '../../../drivers/contract.ts';
import { backingFileOf } from '../../../drivers/volumes/disk-image.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';

const NODE = `lvdisk-${randomBytes(3).toString('hex')}`;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const dataDir = mkdtempSync('/var/tmp/zone-lvdisk-');
chmodSync(dataDir, 0o711);
const ids: string[] = [];
t.teardown(() => {
  for (const id of ids) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

function spec(workload: string, w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', image: '/nonexistent', resources: { memory: '64Mi' }, ...w } as Workload);
  const id = workloadId(NODE, OWNER, 'lvdisk', workload);
  ids.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'lvdisk', workload, id, specHash: specHash(definition), definition };
}

for (const format of ['raw', 'qcow2'] as const) {
  t.test(`a ${format} base gets a qcow2 overlay, removed with the workload`, async (t) => {
    const base = join(dataDir, `base.${format}`);
    execFileSync('qemu-img', ['create', '-q', '-f', format, base, '16M']);
    chmodSync(base, 0o644);
    const driver = new LibvirtDriver({ node: NODE, dataDir, openSecret: () => '' }, { removeGraceMs: 0 });
    t.teardown(() => driver.close());
    const s = spec(`disk-${format}`, { image: base, resources: { memory: '64Mi', disk: '32Mi' } });
    await driver.ensure(s);
    const overlay = join(dataDir, 'libvirt/domains', s.id, 'disk.qcow2');
    t.equal(await backingFileOf(overlay), base, 'the base is the backing file');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', overlay], { encoding: 'utf8' })) as { format: string; 'virtual-size': number };
    t.equal(info.format, 'qcow2');
    t.equal(info['virtual-size'], 32 * 1024 * 1024, 'grown to the disk the spec asks for');
    t.match(execFileSync('virsh', ['-c', 'qemu:///system', 'domblklist', s.id], { encoding: 'utf8' }), overlay);
    await driver.remove(s.id);
    t.notOk(existsSync(overlay), 'overlay deleted');
    t.ok(existsSync(base), 'base kept');
  });
}

t.test('a missing or unreadable base is a spec error on image', async (t) => {
  const driver = new LibvirtDriver({ node: NODE, dataDir, openSecret: () => '' });
  t.teardown(() => driver.close());
  await t.rejects(driver.ensure(spec('missing', { image: join(dataDir, 'nope.qcow2') })), { code: 'WORKLOAD_SPEC', field: 'image' });
});
