// A filesystem volume on the host: a sparse file holding ext4, loop-mounted. The file's
// size is the volume's size, so a workload that fills it gets ENOSPC and nothing else on
// the node fills up. Only the engine's own mkfs ever wrote the file's structures (a
// container reaches the files inside, never the image), so mounting it is safe.
import { readFile, truncate } from 'node:fs/promises';
import { CommandError, runCommand } from '../../lib/exec.ts';

const TOOL_TIMEOUT_MS = 120_000;

/** Formats `file` (made sparse at `sizeBytes`) as ext4 with no blocks kept for root: the workload gets all of its size. */
export async function formatExt4(file: string, sizeBytes: number): Promise<void> {
  await runCommand(['truncate', '-s', String(sizeBytes), file]);
  await runCommand(['mkfs.ext4', '-F', '-q', '-m', '0', '-L', 'zone-volume', file], { timeoutMs: TOOL_TIMEOUT_MS });
}

/** Octal escapes of /proc/self/mountinfo (`\040` for a space) decoded. */
const unescapeMountPath = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Whether `dir` is a mount point now (a kill -9 of the appliance leaves its mounts: they are found, not made twice). */
export async function isMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => unescapeMountPath(line.split(' ')[4] ?? '') === dir);
}

/** Loop-mounts the ext4 in `file` at `dir`; the loop device goes with the unmount (autoclear). */
export async function mountExt4(file: string, dir: string): Promise<void> {
  // A file the workload cannot change the structure of, but check it anyway before the kernel mounts it.
  await runCommand(['e2fsck', '-p', file], { timeoutMs: TOOL_TIMEOUT_MS }).catch((err: unknown) => {
    // 1: errors corrected; anything above 1 is worth refusing the mount for.
    if (!(err instanceof CommandError) || err.exitCode !== 1) throw err;
  });
  await runCommand(['mount', '-t', 'ext4', '-o', 'loop,nosuid,nodev', file, dir]);
  // Direct I/O from the loop device to its file: otherwise the host caches the file a
  // second time, in memory no container's limit is charged for.
  const device = await loopOf(file);
  if (device) await runCommand(['losetup', '--direct-io=on', device]).catch(() => { /* a file system without O_DIRECT: cached, still correct */ });
}

export async function unmount(dir: string): Promise<void> {
  await runCommand(['umount', dir]);
}

/**
 * Detaches the loop devices still backed by `file` once it is unmounted for good: the
 * kernel's autoclear may come a moment after the unmount, and a device must not outlive
 * the file it names.
 */
export async function detachLoops(file: string): Promise<void> {
  const devices = (await runCommand(['losetup', '-j', file, '-n', '-O', 'NAME'])).split('\n').map((l) => l.trim()).filter(Boolean);
  for (const device of devices) await runCommand(['losetup', '-d', device]).catch(() => { /* gone meanwhile */ });
}

/** The loop device backing `file`, or null when none does. */
async function loopOf(file: string): Promise<string | null> {
  return (await runCommand(['losetup', '-j', file, '-n', '-O', 'NAME'])).trim().split('\n')[0] || null;
}

/**
 * Grows the ext4 of `file`, mounted at `dir`, to `sizeBytes`: the file, the loop device's
 * capacity, then the filesystem, online. Online growth needs CAP_SYS_RESOURCE; without it
 * the filesystem is grown unmounted, which is safe only when nothing else holds it.
 */
export async function growExt4(file: string, dir: string, sizeBytes: number): Promise<void> {
  await truncate(file, sizeBytes);
  const device = await loopOf(file);
  if (!device) throw new Error(`no loop device backs ${file}: mount it before growing it`);
  await runCommand(['losetup', '-c', device]);
  try {
    await runCommand(['resize2fs', device], { timeoutMs: TOOL_TIMEOUT_MS });
  } catch (err) {
    if (!(err instanceof CommandError) || !/Permission denied|Operation not permitted/.test(err.stderr)) throw err;
    await growUnmounted(file, dir, device);
  }
}

/** How long an unmounted filesystem's loop device may take to go (autoclear) before it counts as held by a workload. */
const RELEASE_WAIT_MS = 2000;

async function growUnmounted(file: string, dir: string, device: string): Promise<void> {
  await unmount(dir);
  // The loop device goes with the last mount (autoclear): while a container's bind mount
  // holds the filesystem it stays, and a resize under it would corrupt it.
  const until = Date.now() + RELEASE_WAIT_MS;
  while ((await loopOf(file)) !== null && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
  if ((await loopOf(file)) !== null) {
    // Mounted again through the same device: the same superblock, never a second one.
    await runCommand(['mount', '-t', 'ext4', '-o', 'nosuid,nodev', device, dir]);
    throw new Error('a workload holds it: growing it in use needs CAP_SYS_RESOURCE, which this appliance lacks; it grows once no workload mounts it');
  }
  await runCommand(['e2fsck', '-f', '-p', file], { timeoutMs: TOOL_TIMEOUT_MS }).catch((err: unknown) => {
    if (!(err instanceof CommandError) || err.exitCode !== 1) throw err;
  });
  await runCommand(['resize2fs', file], { timeoutMs: TOOL_TIMEOUT_MS });
  await mountExt4(file, dir);
}
