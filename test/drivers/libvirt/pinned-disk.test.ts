// A VM from a pinned disk that only the grid has (real libvirtd, one boot): fetched into
// the node's VM image store, checked against the digest and booted, its own boot sector
// printing on the console; a disk whose bytes are not the digest, or that leans on a
// backing file, is refused on the workload and never booted.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { gridStandIn } from '../../helpers/grid-stand-in.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { buildBootDisk } from '../../helpers/boot-sector.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 120_000;
const NODE = `lvdsk-${randomBytes(3).toString('hex')}`;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
const MARKER = `booted the grid's disk ${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync('/var/tmp/zone-lvdsk-');
chmodSync(dataDir, 0o711);
const disk = await buildBootDisk(join(dataDir, 'boot.qcow2'), MARKER, 'qcow2');
const other = await buildBootDisk(join(dataDir, 'other.raw'), 'another disk', 'raw');
// A qcow2 that reads through to a file of the node.
const leaning = join(dataDir, 'leaning.qcow2');
execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', other.path, '-F', 'raw', leaning]);
const leaningDigest = `sha256:${createHash('sha256').update(await readFile(leaning)).digest('hex')}`;
const forged = `sha256:${'cd'.repeat(32)}`;

/** What the grid holds for the owner, by digest. */
const grid = gridStandIn(OWNER, 'disk', [[disk.digest, disk.path], [forged, other.path], [leaningDigest, leaning]]);
const source = grid.source;
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => '', images: source };
const store = join(dataDir, 'libvirt', 'disk-images');
const created: string[] = [];

function spec(workload: string, w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', resources: { memory: '64Mi' }, ...w } as Workload);
  const id = workloadId(NODE, OWNER, 'lvdsk', workload);
  created.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'lvdsk', workload, id, specHash: specHash(definition), definition };
}

const storedDisks = () => (existsSync(store) ? readdirSync(store).filter((n) => n.endsWith('.disk')) : []);

t.teardown(() => {
  for (const id of created) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

t.test('a pinned qcow2 only the grid has is fetched, kept in the VM image store and booted', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('boot', { image: `boot.qcow2@${disk.digest}` });
  t.teardown(() => driver.remove(s.id));
  await driver.ensure(s);
  const console = await waitFor(async () => {
    let text = '';
    for await (const chunk of await driver.logs(s.id, { follow: false })) text += String(chunk);
    return text.includes(MARKER) ? text : null;
  }, { timeoutMs: BOOT_MS, what: 'the disk\'s boot sector to print on the console' });
  t.match(console, MARKER, 'the disk booted');
  t.equal(grid.fetches(), 1, 'fetched once');
  t.same(storedDisks(), [`${disk.digest.slice(7)}.disk`], 'kept in the node\'s VM image store under its digest');
  t.match(await driver.localImages.list(), [{ digest: disk.digest }], 'recorded for the node\'s collector');
  const domblk = execFileSync('virsh', ['-c', 'qemu:///system', 'domblklist', s.id], { encoding: 'utf8' });
  t.match(domblk, join(dataDir, 'libvirt/domains', s.id, 'disk.qcow2'), 'the VM runs on its own overlay, the stored disk stays as it was');
});

t.test('a disk whose bytes are not the pinned digest is refused as a digest mismatch; nothing is kept or booted', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('forged', { image: `boot.qcow2@${forged}` });
  await t.rejects(driver.ensure(s), { name: 'WorkloadSpecError', message: new RegExp(`workload forged: image: image digest mismatch: the grid's disk for ${forged} has ${other.digest}; not booted`) });
  t.equal(await driver.inspect(s.id), null, 'no domain');
  t.notOk(storedDisks().includes(`${forged.slice(7)}.disk`), 'nothing kept');
});

t.test('a disk with a backing file is refused: a pushed disk stands alone', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('leaning', { image: `leaning.qcow2@${leaningDigest}` });
  await t.rejects(driver.ensure(s), { name: 'WorkloadSpecError', message: /image: disk image leaning.qcow2@sha256:[0-9a-f]{64} has a backing file .*; not booted/ });
  t.equal(await driver.inspect(s.id), null, 'no domain');
});

t.test('a pinned disk boots its own init: a command is refused; a digest the owner has not pushed is refused', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  await t.rejects(driver.ensure(spec('cmd', { image: `boot.qcow2@${disk.digest}`, command: ['true'] })), { name: 'WorkloadSpecError', field: 'command' });
  await t.rejects(driver.ensure(spec('stranger', { image: `x@sha256:${'0'.repeat(64)}` })), { name: 'WorkloadSpecError', message: /is not in the owner's grid image store/ });
});

t.test('the collector removes a stored disk through localImages', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  t.equal(await driver.localImages.remove(disk.digest), true);
  t.same(storedDisks(), [], 'gone from the store');
  t.same(await driver.localImages.list(), [], 'and from the record');
});
