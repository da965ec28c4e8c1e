// A VM from a pinned container image that only the grid has (real libvirtd, one boot):
// fetched, checked and loaded like a container's, then booted by its ID; a digest the
// owner never pushed is refused before anything boots.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { DriverContext, ImageSource, WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { buildImageArchive, removeImage } from '../../helpers/image-archive.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 180_000;
const NODE = `lvpin-${randomBytes(3).toString('hex')}`;
const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;
const dataDir = mkdtempSync('/var/tmp/zone-lvpin-');
chmodSync(dataDir, 0o711);
const image = await buildImageArchive(dataDir, `zone-test/vm-pinned-${process.pid}:1`, 'booted from the grid\n');
const source: ImageSource = {
  kindOf: async (owner, digest) => (owner === OWNER && digest === image.digest ? 'container' : null),
  fetch: async (owner, digest, path) => {
    if (owner !== OWNER || digest !== image.digest) return false;
    await copyFile(image.path, path);
    return true;
  },
};
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => '', images: source };
const created: string[] = [];

function spec(workload: string, w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', resources: { memory: '128Mi' }, ...w } as Workload);
  const id = workloadId(NODE, OWNER, 'lvpin', workload);
  created.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'lvpin', workload, id, specHash: specHash(definition), definition };
}

t.teardown(async () => {
  for (const id of created) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  await removeImage(image.digest);
  rmSync(dataDir, { recursive: true, force: true });
});

t.test('a VM boots a pinned image fetched from the grid; the extra file is there', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('show', { image: `zone-test/vm@${image.digest}`, command: ['sh', '-c', 'cat /zone-extra.txt; exit 0'] });
  t.teardown(() => driver.remove(s.id));
  await driver.ensure(s);
  const exited = await waitFor(async () => {
    const o = await driver.inspect(s.id);
    return o?.state === 'exited' ? o : null;
  }, { timeoutMs: BOOT_MS, what: 'the guest to run its command and power off' });
  t.equal(exited.exitCode, 0);
  let console = '';
  for await (const chunk of await driver.logs(s.id, { follow: false })) console += String(chunk);
  t.match(console, 'booted from the grid', 'the guest printed the file only the pushed image has');
});

t.test('a digest the owner never pushed is refused before anything boots', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('stranger', { image: `zone-test/vm@sha256:${'1'.repeat(64)}`, command: ['true'] });
  await t.rejects(driver.ensure(s), { name: 'WorkloadSpecError', message: /workload stranger: image: .* is not in the owner's grid image store/ });
  t.equal(await driver.inspect(s.id), null, 'no domain');
});
