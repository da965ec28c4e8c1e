// A disk image a VM really boots from, for tests of disk-image VMs: SeaBIOS loads
// extlinux from the first sector of an ext2 file system that spans the whole disk (no
// partition table, so the guest mounts it as /dev/vda), extlinux loads the cached VM
// kernel and an initrd of zone/busybox whose /init (the engine's guest init) loads the
// virtio disk driver and ext4, waits for `disks` disks and runs `command`. Needs root (a loop
// mount), dockerd (the busybox rootfs) and extlinux (scripts/setup-host).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Docker from 'dockerode';
import { DISK_MODULES } from '../../drivers/libvirt/driver.ts';
import { guestInitScript } from '../../drivers/libvirt/guest-init.ts';
import { imageRootfs, writeWorkloadInitrd } from '../../drivers/libvirt/initramfs.ts';

export const VM_KERNEL = '/var/cache/zone/kernel/vmlinuz';
/** ext4 (which mounts the ext2 root) and what it needs, in load order: Debian builds them as modules. */
const FS_MODULES = ['crypto/crc32c_generic.ko', 'lib/crc16.ko', 'fs/mbcache.ko', 'fs/jbd2/jbd2.ko', 'fs/ext4/ext4.ko']
  .map((path) => ({ host: `modules/kernel/${path}`, guest: `/lib/zone/${path.slice(path.lastIndexOf('/') + 1)}` }));

export interface BootDisk {
  /** Where the raw image is written. */
  path: string;
  /** A folder for the rootfs cache and the scratch files. */
  workDir: string;
  /** What the guest runs (sh -c) once its disks are there. */
  command: string;
  /** How many virtio disks the guest waits for: its own and the volumes given to it. */
  disks: number;
  sizeBytes?: number;
}

export async function writeBootDisk(disk: BootDisk): Promise<void> {
  const modules = Object.fromEntries([...DISK_MODULES, ...FS_MODULES].map((m) => [m.guest, join(dirname(VM_KERNEL), m.host)]));
  const script = guestInitScript({ workload: 'os', argv: ['sh', '-c', disk.command], env: {}, workdir: null, modules: Object.keys(modules), disks: disk.disks });
  const rootfs = await imageRootfs(new Docker({ socketPath: '/var/run/docker.sock' }), 'zone/busybox', join(disk.workDir, 'rootfs-cache'));
  const scratch = mkdtempSync(join(disk.workDir, 'boot-disk-'));
  const mnt = join(scratch, 'mnt');
  try {
    await writeWorkloadInitrd(rootfs.archive, script, join(scratch, 'initrd.gz'), modules);
    execFileSync('truncate', ['-s', String(disk.sizeBytes ?? 64 * 2 ** 20), disk.path]);
    execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'zone-root', disk.path]);
    mkdirSync(mnt);
    execFileSync('mount', ['-o', 'loop', disk.path, mnt]);
    try {
      mkdirSync(join(mnt, 'boot'));
      execFileSync('cp', [VM_KERNEL, join(mnt, 'boot/vmlinuz')]);
      execFileSync('cp', [join(scratch, 'initrd.gz'), join(mnt, 'boot/initrd.gz')]);
      writeFileSync(join(mnt, 'boot/extlinux.conf'), 'DEFAULT zone\nPROMPT 0\nLABEL zone\n  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.gz\n  APPEND console=ttyS0 panic=-1 quiet\n');
      execFileSync('extlinux', ['--install', join(mnt, 'boot')], { stdio: 'ignore' });
    } finally {
      execFileSync('umount', [mnt]);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
