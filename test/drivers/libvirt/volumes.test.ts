// A block volume given to a VM as a virtio disk, against the real libvirtd (TCG is fine),
// one boot: the guest (a container image with the engine's init) writes to /dev/vda with
// fsync (a flush: qemu writes its qcow2 tables then, not when it is killed) and reads it
// back; after the domain is removed, the volume's qcow2 still holds what it wrote (the
// VM's initrd and console log go with the domain, the volume does not).
// Run it under `flock /tmp/zone-vm.lock`.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { volumeId, workloadId } from '../../../drivers/names.ts';
import { HostVolumes } from '../../../drivers/volumes/provider.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `lvvol-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:volume-owner';
const ID = workloadId(NODE, OWNER, 'vols', 'vm');
const dataDir = mkdtempSync('/var/tmp/zone-lvvol-');
chmodSync(dataDir, 0o711); // qemu (libvirt's qemu user) walks to the initrd and the disk under the data dir
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => '' };
const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
const volumes = new HostVolumes(join(dataDir, 'volumes'), NODE);
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });

t.teardown(async () => {
  await driver.close();
  virsh('destroy', ID);
  virsh('undefine', ID);
  for (const v of await volumes.list()) await volumes.remove(v.id);
  rmSync(dataDir, { recursive: true, force: true });
});

t.test('a VM writes to its block volume; the data outlives the domain', async (t) => {
  const volume = await volumes.ensure({ node: NODE, owner: OWNER, blueprint: 'vols', volume: 'disk', id: volumeId(NODE, OWNER, 'vols', 'disk'), kind: 'block', sizeBytes: 16 * 2 ** 20 });
  const definition = normalizeWorkload({
    name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' }, disks: [{ volume: 'disk' }],
    command: ['sh', '-c', 'echo "disks: $(ls /sys/block | tr "\\n" " ") modules: $(cut -d" " -f1 /proc/modules | tr "\\n" " ")"; [ -b /dev/vda ] && printf zone-volume-data | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null && echo "read back: $(head -c 16 /dev/vda)"; sleep 3600'],
  });
  const spec: WorkloadSpec = { node: NODE, owner: OWNER, blueprint: 'vols', workload: 'vm', id: ID, specHash: specHash(definition), definition, volumePaths: { disk: volume.path! } };
  await driver.ensure(spec);
  const consoleText = async () => {
    let text = '';
    for await (const chunk of await driver.logs(ID, { follow: false })) text += String(chunk);
    return text;
  };
  const line = await waitFor(async () => /read back: (\S+)\r?\n/.exec(await consoleText())?.[1], { timeoutMs: 180_000, what: 'the guest wrote its disk' })
    .catch(async (err: Error) => { throw new Error(`${err.message}; console: ${(await consoleText()).slice(-1500)}`); });
  t.equal(line, 'zone-volume-data', 'the guest reads back what it wrote on /dev/vda');

  await driver.remove(ID);
  t.ok(existsSync(volume.path!), 'the volume stays when the domain goes');
  const raw = join(dataDir, 'first-sector.raw');
  execFileSync('qemu-img', ['dd', '-f', 'qcow2', '-O', 'raw', 'bs=512', 'count=1', `if=${volume.path!}`, `of=${raw}`]);
  t.equal(readFileSync(raw, 'utf8').slice(0, 16), 'zone-volume-data', 'and holds what the guest wrote');
});
