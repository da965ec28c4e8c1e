// A disk image booted as a VM: each workload runs on its own qcow2 overlay whose backing
// file is the operator's image, so the base is never written.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export class DiskImageError extends Error {}

export interface DiskImageInfo {
  format: 'qcow2' | 'raw';
  virtualSize: number;
}

/** Format and size of a base image, from `qemu-img info` (validated). */
export async function diskImageInfo(path: string): Promise<DiskImageInfo> {
  let stdout: string;
  try {
    ({ stdout } = await execFileP('qemu-img', ['info', '--output=json', '-U', path], { maxBuffer: 1 << 20 }));
  } catch (err) {
    throw new DiskImageError(`cannot read disk image ${path}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  const info = JSON.parse(stdout) as { format?: unknown; 'virtual-size'?: unknown };
  const format = info.format;
  const size = info['virtual-size'];
  if (format !== 'qcow2' && format !== 'raw') throw new DiskImageError(`disk image ${path} is ${String(format)}; qcow2 and raw are accepted`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new DiskImageError(`disk image ${path}: qemu-img reported no virtual size`);
  return { format, virtualSize: size };
}

/** Creates `overlay` (qcow2) backed by `base`; grows it to `sizeBytes` when that is larger. */
export async function createOverlay(base: string, baseInfo: DiskImageInfo, overlay: string, sizeBytes: number): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-b', base, '-F', baseInfo.format, overlay];
  if (sizeBytes > baseInfo.virtualSize) args.push(String(sizeBytes));
  try {
    await execFileP('qemu-img', args);
  } catch (err) {
    throw new DiskImageError(`cannot create the overlay of ${base}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/** The backing file qemu-img records for `overlay` (null when it has none). */
export async function backingFileOf(overlay: string): Promise<string | null> {
  const { stdout } = await execFileP('qemu-img', ['info', '--output=json', '-U', overlay]);
  const backing = (JSON.parse(stdout) as { 'backing-filename'?: unknown })['backing-filename'];
  return typeof backing === 'string' ? backing : null;
}
