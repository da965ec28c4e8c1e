// A VM booted from a disk image keeps its disks across a new version, through the whole
// appliance with the real libvirt driver and volume provider (TCG is fine), two boots:
// the guest writes a file on its root disk (ext2 on /dev/vda, the volume that overlays
// the image) and a sector of its block volume (/dev/vdb), each flushed; version 2 asks
// for more memory, so the engine replaces the domain; the new guest finds both. Version
// 3 grows the block volume: the running guest sees the new size (virsh blockresize), no
// reboot. A tombstone then removes the domain and releases both volumes (kept for the
// retention period), and the image itself is never written.
// Run it under `flock /tmp/zone-vm.lock`.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { buildVolumeProvider } from '../../../appliance/drivers.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import type { VolumeProvider } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { writeBootDisk } from '../../helpers/boot-disk.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 180_000;
const dir = mkdtempSync('/var/tmp/zone-lvdiskvol-');
chmodSync(dir, 0o711); // qemu (libvirt's qemu user) walks to the image and the volumes under it
const images = join(dir, 'images');
const dataDir = join(dir, 'node');
mkdirSync(images, { mode: 0o711 });
mkdirSync(dataDir, { mode: 0o711 });
chmodSync(images, 0o711);
writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ policy: { vmImages: [images] } }));

// First boot: writes a fresh id to each disk; a later boot finds them. Then it tells each size /dev/vdb has.
const GUEST = [
  'mkdir -p /mnt && mount -t ext2 /dev/vda /mnt || echo "root: not mounted"',
  'if [ -f /mnt/zone-data ]; then echo "root: found $(cat /mnt/zone-data)"; else cat /proc/sys/kernel/random/uuid >/mnt/zone-data && sync && echo "root: wrote $(cat /mnt/zone-data)"; fi',
  'b=$(head -c 47 /dev/vdb | tr -d "\\000")',
  'case "$b" in zone-block*) echo "block: found ${b#zone-block }";; *) printf "zone-block %s" "$(cat /proc/sys/kernel/random/uuid)" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null && echo "block: wrote $(head -c 47 /dev/vdb | cut -c12-)";; esac',
  's=; while :; do n=$(cat /sys/block/vdb/size); [ "$n" = "$s" ] || echo "vdb sectors: $n"; s=$n; sleep 1; done',
].join('\n');
const image = join(images, 'os.raw');
await writeBootDisk({ path: image, workDir: dir, command: GUEST, disks: 2 });
chmodSync(image, 0o644);
const imageDigest = () => createHash('sha256').update(readFileSync(image)).digest('hex');
const imageBefore = imageDigest();

const config = { ...loadNodeConfig({ env: { ZONE_DATA_DIR: dataDir }, cwd: dir }), volumes: { retentionMs: 3_600_000 } };
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
let provider: VolumeProvider | null = null;
const appliance: ZoneAppliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new LibvirtDriver(ctx)],
  volumes: (ctx) => (provider = buildVolumeProvider(ctx)),
  hostCapacity: { cpus: 2, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
});
appliance.start();
const node = appliance.identity.id;
const id = workloadId(node, operator.publicKey, 'lvdiskvol', 'os');
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });

t.teardown(async () => {
  await appliance.close();
  virsh('destroy', id);
  virsh('undefine', id);
  for (const v of (await provider?.list()) ?? []) await provider!.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
});

const submit = (version: number, memory: string, size = '16Mi') => appliance.submit(signBlueprint({
  name: 'lvdiskvol', version, owner: operator.publicKey, node,
  volumes: [{ name: 'data', size, kind: 'block' }],
  workloads: [{ name: 'os', kind: 'vm', image, resources: { memory }, disks: [{ volume: 'data' }] }],
} as Blueprint, operator.secretKey));

async function consoleText(): Promise<string> {
  let text = '';
  for await (const chunk of await appliance.logs('lvdiskvol', 'os', { follow: false })) text += String(chunk);
  return text;
}
/** What the running guest printed for `disk` ("root", "block"): wrote or found, and the id.
 * Only a whole line counts: the console may be read while the guest is still printing one. */
const said = (disk: string) => waitFor(async () => new RegExp(`${disk}: (wrote|found) (\\S+)\\r?\\n`).exec(await consoleText())?.slice(1), { timeoutMs: BOOT_MS, what: `the guest's ${disk} line` })
  .catch(async (err: Error) => { throw new Error(`${err.message}; console: ${(await consoleText().catch(() => '')).slice(-1500)}`); });
const memoryKiB = () => /Max memory:\s+(\d+) KiB/.exec(virsh('dominfo', id).stdout)?.[1];

t.test('a disk-image VM keeps its root disk and its block volume when a new version replaces it', async (t) => {
  await submit(1, '128Mi');
  const [rootFirst, rootId] = await said('root');
  const [blockFirst, blockId] = await said('block');
  t.same([rootFirst, blockFirst], ['wrote', 'wrote'], 'the first boot writes both disks');
  t.equal(memoryKiB(), String(128 * 1024));
  const volumes = await appliance.listVolumes();
  const root = volumes.find((v) => v.name.startsWith('os.root-'));
  t.match(root, { kind: 'block', blueprint: 'lvdiskvol', attachedTo: ['os'], state: 'ready' }, 'the root disk is a volume of the blueprint, listed with the others');
  t.ok(root && root.sizeBytes >= 64 * 2 ** 20, 'at least the size of its image');

  await submit(2, '160Mi');
  await waitFor(() => memoryKiB() === String(160 * 1024), { timeoutMs: 60_000, what: 'the domain replaced with the new memory' });
  const [rootThen, rootIdThen] = await said('root');
  const [blockThen, blockIdThen] = await said('block');
  t.same([rootThen, rootIdThen], ['found', rootId], 'the new domain finds the file its root disk kept');
  t.same([blockThen, blockIdThen], ['found', blockId], 'and the sector its block volume kept');
});

t.test('a block volume that grows while its VM runs is grown live: the guest sees the new size, the domain stays', async (t) => {
  const domid = virsh('domid', id).stdout.trim();
  await waitFor(async () => (await consoleText()).includes(`vdb sectors: ${(16 * 2 ** 20) / 512}`), { timeoutMs: 30_000, what: 'the guest telling its disk size' });
  await submit(3, '160Mi', '32Mi');
  await waitFor(async () => (await consoleText()).includes(`vdb sectors: ${(32 * 2 ** 20) / 512}`), { timeoutMs: 60_000, what: 'the guest seeing 32Mi' })
    .catch(async (err: Error) => { throw new Error(`${err.message}; events: ${JSON.stringify(appliance.events({ blueprint: 'lvdiskvol' }).slice(-5))}`); });
  t.equal(virsh('domid', id).stdout.trim(), domid, 'the same domain, not rebooted');
  await waitFor(async () => (await appliance.listVolumes()).find((v) => v.name === 'data')?.sizeBytes === 32 * 2 ** 20, { timeoutMs: 30_000, what: 'the volume recorded at 32Mi' });
  t.pass('the volume is recorded at its new size');
});

t.test('a tombstone removes the domain and releases both volumes, kept for the retention period; the image is never written', async (t) => {
  await appliance.submit(signBlueprint({ name: 'lvdiskvol', version: 4, owner: operator.publicKey, node, delete: true } as Blueprint, operator.secretKey));
  await waitFor(() => virsh('dominfo', id).status !== 0, { timeoutMs: 60_000, what: 'the domain removed' });
  await waitFor(async () => {
    const volumes = await appliance.listVolumes();
    return volumes.length === 2 && volumes.every((v) => v.state === 'released' && v.deleteAt !== null);
  }, { timeoutMs: 30_000, what: 'both volumes released' });
  t.pass('both volumes released, their deletion scheduled');
  t.equal(imageDigest(), imageBefore, 'the image is as it was written');
});
