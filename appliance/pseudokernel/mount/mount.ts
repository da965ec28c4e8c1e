// One /zone mount per workload: a FUSE file system served by this process at a host
// directory, which the driver bind-mounts into the workload. Its operations run on this
// process's main thread, so this process must never touch the mount synchronously.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Fuse from '../../../vendor/fuse-native/index.js';
import type { Logger } from 'pino';
import { DEFAULT_LIMITS } from '../../config.ts';
import type { GridFs, ProcTable, SelfInfo } from '../interfaces.ts';
import { ZoneFs } from './zone-fs.ts';
import { fuseOperations } from './fuse-ops.ts';

const run = promisify(execFile);

export interface ZoneMountOptions {
  /** The host directory to mount on; created when missing. */
  mountpoint: string;
  /** The owner's shared files (`fs/`). */
  grid: GridFs;
  /** The owner's workloads on every node (`proc/`). */
  proc: ProcTable;
  /** The workload the mount is for (`self/`). */
  self: SelfInfo;
  logger: Logger;
  /** Where the mount's private directory of local file copies is made; the OS temp dir by default. */
  scratchParent?: string;
  /** Open files the mount holds at most (the config's limits.zoneOpenFiles by default). */
  maxOpenFiles?: number;
  /** Bytes of local copies of files open for writing (the config's limits.ownerBytes by default). */
  maxScratchBytes?: number;
  /** Told when a FIFO is looked up through the mount (an open of it may wait for its other end). */
  onFifo?: () => void;
}

export interface ZoneMount {
  readonly mountpoint: string;
  /** Idempotent. Lazy, so a workload still holding files open cannot keep the mount in place. */
  unmount(): Promise<void>;
}

/**
 * The kernel's read-ahead on a mount, in KiB. Its default (128) is one FUSE read: a
 * sequential reader then waits a round trip through this process for every 128 KiB.
 * With more, the kernel keeps several reads in flight, which the file's version answers
 * from the chunks it fetched ahead.
 */
const READ_AHEAD_KB = 2048;

// An operation left unanswered this long fails with ETIMEDOUT rather than holding the
// workload in D state; a close publishes a whole file (an open for writing fetches one), hence the generous bound.
const OPERATION_TIMEOUT_MS = 120_000;

class ZoneFuse extends Fuse {
  // Options fuse-native has no name for: writes of up to 128 KiB instead of 4 KiB, and the
  // inode numbers getattr reports (one per entry, whatever its names) instead of libfuse's
  // own per name. (Not hard_remove: libfuse then gives operations on an unlinked open file
  // a NULL path, which fuse-native crashes on.)
  protected override _fuseOptions(): string {
    return `${super._fuseOptions()},big_writes,use_ino`;
  }
}

export async function mountZone(options: ZoneMountOptions): Promise<ZoneMount> {
  const mountpoint = resolve(options.mountpoint);
  const scratchDir = await mkdtemp(join(options.scratchParent ?? tmpdir(), 'zone-fuse-'));
  const zfs = new ZoneFs({ grid: options.grid, proc: options.proc, self: options.self, scratchDir,
    maxOpenFiles: options.maxOpenFiles ?? DEFAULT_LIMITS.zoneOpenFiles,
    maxScratchBytes: options.maxScratchBytes ?? DEFAULT_LIMITS.ownerBytes,
  });
  const fuse: ZoneFuse = new ZoneFuse(mountpoint, fuseOperations(zfs, options.logger, () => fuse.caller, options.onFifo), {
    // The container's processes are not this process: without it they get EACCES.
    allowOther: true,
    // The kernel checks every access against the modes and owners getattr reports, as POSIX says.
    defaultPermissions: true,
    mkdir: true,
    // Unmounts first a dead mount (ENOTCONN) that a crashed appliance left there.
    force: true,
    fsname: 'zone',
    // No attribute cache: the kernel stops reads at the size it knows, and close-to-open
    // needs the size as of the open, whoever changed the file since.
    attrTimeout: '0',
    entryTimeout: '0',
    timeout: OPERATION_TIMEOUT_MS,
  });
  try {
    await promisify(fuse.mount.bind(fuse))();
  } catch (err) {
    await rm(scratchDir, { recursive: true, force: true });
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot mount /zone at ${mountpoint}: ${reason} (it needs root, /dev/fuse and libfuse2, and the directory must not be a mountpoint already)`, { cause: err });
  }
  await setReadAhead(mountpoint, READ_AHEAD_KB).catch((err: unknown) => {
    options.logger.warn({ err, mountpoint }, '/zone: could not raise the kernel\'s read-ahead; sequential reads are slower');
  });
  let unmounting: Promise<void> | null = null;
  return {
    mountpoint,
    unmount: () => (unmounting ??= unmountZone(fuse, mountpoint, zfs, scratchDir, options.logger)),
  };
}

async function unmountZone(fuse: Fuse, mountpoint: string, zfs: ZoneFs, scratchDir: string, logger: Logger): Promise<void> {
  try {
    // `fusermount -uz`, then fuse-native lets go of the event loop.
    await promisify(fuse.unmount.bind(fuse))();
  } catch (err) {
    // fusermount missing or refusing: we are root, umount -l does the same. fuse-native
    // then keeps a libuv handle alive, so the process has to exit explicitly.
    logger.warn({ err, mountpoint }, '/zone: fusermount failed, unmounting lazily with umount -l');
    if (await isMounted(mountpoint)) await run('umount', ['-l', mountpoint]);
  }
  await zfs.close();
  await rm(scratchDir, { recursive: true, force: true });
}

/** Whether something is mounted at `path` (absolute), as /proc/self/mountinfo says. */
export async function isMounted(path: string): Promise<boolean> {
  return (await deviceOf(path)) !== null;
}

/** The device (`major:minor`) mounted at `path` (absolute) last, as /proc/self/mountinfo says; null when none is. */
async function deviceOf(path: string): Promise<string | null> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash as octal escapes; field 3 its device.
  const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const line = mountinfo.split('\n').reverse().find((l) => unescape(l.split(' ')[4] ?? '') === path);
  return line?.split(' ')[2] ?? null;
}

/** Sets the kernel's read-ahead of the FUSE mount at `mountpoint` (its backing device's, in sysfs; root only). */
async function setReadAhead(mountpoint: string, kb: number): Promise<void> {
  const device = await deviceOf(mountpoint);
  if (!device || !/^\d+:\d+$/.test(device)) throw new Error(`no device is mounted at ${mountpoint}`);
  await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, String(kb));
}
