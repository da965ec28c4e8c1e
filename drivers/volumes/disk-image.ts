// A disk image a VM boots from: its root disk is a block volume made as a qcow2 overlay
// whose backing file is the operator's image, so the base is never written. The base must
// be a regular file (after resolving symlinks): a FIFO would hang qemu-img, a device
// (/dev/sda) would be booted as a backing file. Admission checks it against the node
// policy; this checks again when the overlay is made. Every qemu-img run is bounded in time.
import { realpathSync, statSync } from 'node:fs';
import { runCommand, type CommandError } from '../../lib/exec.ts';

/** How long one qemu-img run may take (info reads a header; create writes a small file). */
export const QEMU_IMG_TIMEOUT_MS = 60_000;

export class DiskImageError extends Error {}

export interface DiskImageInfo {
  /** The base image's real path (symlinks resolved): the overlay's backing file. */
  path: string;
  format: 'qcow2' | 'raw';
  virtualSize: number;
}

/** What a non-regular file is, for refusals. */
function kindOf(s: { isDirectory(): boolean; isFIFO(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean; isSocket(): boolean }): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * The real path of `path` when it is a regular file; a DiskImageError otherwise. Only
 * stat()s (never opens) the file, so a FIFO cannot block it; synchronous so that
 * admission can call it between its version check and its write.
 */
export function regularImageFile(path: string): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new DiskImageError(`disk image ${path} cannot be found (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const s = statSync(real);
  if (!s.isFile()) throw new DiskImageError(`disk image ${path}${real !== path ? ` (${real})` : ''} is ${kindOf(s)}; a qcow2 or raw image file is accepted`);
  return real;
}

/** Runs qemu-img, killed after `timeoutMs`; its stdout, or a DiskImageError saying `what` failed. */
export async function runQemuImg(args: string[], what: string, timeoutMs = QEMU_IMG_TIMEOUT_MS): Promise<string> {
  try {
    return await runCommand(['qemu-img', ...args], { timeoutMs });
  } catch (err) {
    // No exit code: it did not start or did not finish in time, which stderr says.
    const e = err as CommandError;
    throw new DiskImageError(`${what}: ${e.exitCode === null ? `qemu-img ${e.stderr}` : e.stderr.trim() || e.message}`);
  }
}

/** Format and size of a base image, from `qemu-img info` (validated). */
export async function diskImageInfo(path: string, timeoutMs = QEMU_IMG_TIMEOUT_MS): Promise<DiskImageInfo> {
  return (await readDiskImage(path, timeoutMs)).info;
}

/**
 * A disk image that stands alone, as a pushed one must: qcow2 or raw, with no backing file
 * and no external data file (either names a file of the node that opens it, which the
 * guest could then read).
 */
export async function standaloneDiskInfo(path: string, timeoutMs = QEMU_IMG_TIMEOUT_MS): Promise<DiskImageInfo> {
  const { info, raw } = await readDiskImage(path, timeoutMs);
  const backing = raw['backing-filename'] ?? raw['full-backing-filename'];
  if (backing !== undefined) throw new DiskImageError(`disk image ${path} has a backing file (${JSON.stringify(backing)}); a pushed disk must stand alone (qemu-img convert it)`);
  const specific = raw['format-specific'] as { data?: { 'data-file'?: unknown } } | undefined;
  if (specific?.data?.['data-file'] !== undefined) throw new DiskImageError(`disk image ${path} keeps its data in an external file; a pushed disk must stand alone (qemu-img convert it)`);
  return info;
}

async function readDiskImage(path: string, timeoutMs: number): Promise<{ info: DiskImageInfo; raw: Record<string, unknown> }> {
  const real = regularImageFile(path);
  const stdout = await runQemuImg(['info', '--output=json', '-U', real], `cannot read disk image ${path}`, timeoutMs);
  const raw = JSON.parse(stdout) as Record<string, unknown>;
  const format = raw.format;
  const size = raw['virtual-size'];
  if (format !== 'qcow2' && format !== 'raw') throw new DiskImageError(`disk image ${path} is ${String(format)}; qcow2 and raw are accepted`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new DiskImageError(`disk image ${path}: qemu-img reported no virtual size`);
  return { info: { path: real, format, virtualSize: size }, raw };
}

/** Creates `overlay` (qcow2) backed by the base image; grows it to `sizeBytes` when that is larger. */
export async function createOverlay(baseInfo: DiskImageInfo, overlay: string, sizeBytes: number): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-b', baseInfo.path, '-F', baseInfo.format, overlay];
  if (sizeBytes > baseInfo.virtualSize) args.push(String(sizeBytes));
  await runQemuImg(args, `cannot create the overlay of ${baseInfo.path}`);
}

/** The backing file qemu-img records for `overlay` (null when it has none). */
export async function backingFileOf(overlay: string): Promise<string | null> {
  const stdout = await runQemuImg(['info', '--output=json', '-U', overlay], `cannot read overlay ${overlay}`);
  const backing = (JSON.parse(stdout) as { 'backing-filename'?: unknown })['backing-filename'];
  return typeof backing === 'string' ? backing : null;
}
