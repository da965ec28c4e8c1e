// VM disk images by host path, checked on the host when a node admits a blueprint: a FIFO, a device, a
// directory, a symlink leading out of the allowed prefix and a path outside it are each
// refused with the field named; a regular image file under the prefix is admitted.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { GIB } from '../../appliance/admission.ts';
import { createAppliance } from '../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { ZoneError } from '../../lib/errors.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';

const base = mkdtempSync(join(tmpdir(), 'zone-vm-images-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const images = join(base, 'images');
const outside = join(base, 'outside');
mkdirSync(images);
mkdirSync(outside);
execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(images, 'good.qcow2'), '16M']);
execFileSync('mkfifo', [join(images, 'fifo')]);
// A block device node like /dev/sda (major 8, minor 0), made here so no real disk is named.
execFileSync('mknod', [join(images, 'sda'), 'b', '8', '0']);
mkdirSync(join(images, 'dir'));
writeFileSync(join(outside, 'secret.img'), 'not for VMs');
symlinkSync(join(outside, 'secret.img'), join(images, 'link-out'));
symlinkSync(join(images, 'good.qcow2'), join(images, 'link-in'));

// A node whose policy lets VMs boot disk images from `images` (and nothing else).
const dataDir = join(base, 'node');
mkdirSync(dataDir);
writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ policy: { vmImages: [images] } }));
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dataDir }, cwd: base });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }), drivers: () => [],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
});
t.teardown(() => appliance.close());

let version = 0;
const submit = (image: string) => appliance.submit(signBlueprint({
  name: 'v', version: ++version, owner: operator.publicKey, node: appliance.identity.id,
  workloads: [{ name: 'box', kind: 'container', image: 'zone/busybox' }, { name: 'vm', kind: 'vm', image, resources: { memory: '64Mi' } }],
} as Blueprint, operator.secretKey));

async function refused(t: Test, image: string, code: string, message: RegExp): Promise<void> {
  try {
    await submit(image);
  } catch (err) {
    t.type(err, ZoneError);
    t.match(err, { code, field: '/workloads/1/image', message }, `${image}: ${(err as Error).message}`);
    return;
  }
  t.fail(`${image} was admitted`);
}

t.test('only regular files under policy.vmImages, symlinks resolved', async (t) => {
  await refused(t, join(images, 'fifo'), 'INVALID', /workload vm: disk image .*fifo is a FIFO; a qcow2 or raw image file is accepted/);
  await refused(t, join(images, 'sda'), 'INVALID', /is a block device/);
  await refused(t, join(images, 'dir'), 'INVALID', /is a directory/);
  await refused(t, join(images, 'missing.qcow2'), 'INVALID', /cannot be found \(ENOENT\)/);
  await refused(t, join(images, 'link-out'), 'POLICY', /resolves to .*outside\/secret\.img, outside the node's policy\.vmImages/);
  await refused(t, join(outside, 'secret.img'), 'POLICY', /the host path .* as a VM image is not allowed/);
  await refused(t, '/dev/sda', 'POLICY', /the host path \/dev\/sda as a VM image is not allowed/);
  t.same(appliance.listBlueprints(), [], 'nothing refused was stored');
  t.match(await submit(join(images, 'good.qcow2')), { name: 'v' }, 'a qcow2 file under the prefix');
  t.match(await submit(join(images, 'link-in')), { name: 'v' }, 'a symlink to one');
  t.match(await submit('zone/busybox'), { name: 'v' }, 'a local container image needs no policy');
});
