// VM disk images by host path, checked on the host at admission: a FIFO, a device, a
// directory, a symlink leading out of the allowed prefix and a path outside it are each
// refused with the field named; a regular image file under the prefix is admitted.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkPolicy, type NodePolicy } from '../../appliance/admission.ts';
import { ZoneError } from '../../appliance/errors.ts';
import { checkVmImageFiles } from '../../appliance/vm-images.ts';
import type { Blueprint } from '../../blueprints/schema.ts';

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

const policy: NodePolicy = { privileged: false, hostNetwork: false, hostMounts: [], devices: [], capabilities: [], vmImages: [images] };
const bp = (image: string): Blueprint => ({
  name: 'v', version: 1, owner: 'ed25519:' + 'A'.repeat(43) + '=', node: 'n1',
  workloads: [{ name: 'box', kind: 'container', image: 'zone/busybox' }, { name: 'vm', kind: 'vm', image, resources: { memory: '64Mi' } }],
});
/** Admission's two checks, as submit runs them. */
const admit = (image: string) => {
  checkPolicy(bp(image), policy);
  checkVmImageFiles(bp(image), policy);
};
function refused(image: string, code: string, message: RegExp): void {
  try {
    admit(image);
  } catch (err) {
    t.type(err, ZoneError);
    t.match(err, { code, field: '/workloads/1/image', message }, `${image}: ${(err as Error).message}`);
    return;
  }
  t.fail(`${image} was admitted`);
}

t.test('only regular files under policy.vmImages, symlinks resolved', async () => {
  refused(join(images, 'fifo'), 'INVALID', /workload vm: disk image .*fifo is a FIFO; a qcow2 or raw image file is accepted/);
  refused(join(images, 'sda'), 'INVALID', /is a block device/);
  refused(join(images, 'dir'), 'INVALID', /is a directory/);
  refused(join(images, 'missing.qcow2'), 'INVALID', /cannot be found \(ENOENT\)/);
  refused(join(images, 'link-out'), 'POLICY', /resolves to .*outside\/secret\.img, outside the node's policy\.vmImages/);
  refused(join(outside, 'secret.img'), 'POLICY', /the host path .* as a VM image is not allowed/);
  refused('/dev/sda', 'POLICY', /the host path \/dev\/sda as a VM image is not allowed/);
  t.doesNotThrow(() => admit(join(images, 'good.qcow2')), 'a qcow2 file under the prefix');
  t.doesNotThrow(() => admit(join(images, 'link-in')), 'a symlink to one');
  t.doesNotThrow(() => admit('zone/busybox'), 'a local container image needs no policy');
});
