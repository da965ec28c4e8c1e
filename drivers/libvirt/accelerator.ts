// Which accelerator VMs get, decided by a real probe: /dev/kvm may exist and still not run a
// guest (nested KVM on these machines hangs), so a tiny qemu boots the VM kernel with KVM and
// must print the kernel banner within the time limit; otherwise guests use TCG. The answer is
// kept for the host's boot: where KVM hangs the probe costs its whole time limit, which every
// appliance start and `zone cluster up` would pay again.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Accelerator } from './domain-xml.ts';

export interface AcceleratorProbe {
  accelerator: Accelerator;
  /** Why this one, for the node's details. */
  reason: string;
}

export interface ProbeOptions {
  kernel: string;
  timeoutMs?: number;
  kvmDevice?: string;
  qemu?: string;
  /** Where answers are kept for this boot (a tmpfs, emptied by a reboot); null: always probe. */
  cacheDir?: string | null;
}

const DEFAULT_CACHE_DIR = '/run/zone/accelerator';
const BOOT_ID = '/proc/sys/kernel/random/boot_id';

const BANNER = 'Linux version';

export async function probeAccelerator(options: ProbeOptions): Promise<AcceleratorProbe> {
  const cacheDir = options.cacheDir === undefined ? DEFAULT_CACHE_DIR : options.cacheDir;
  const cache = cacheDir === null ? null : await cacheFileOf(options, cacheDir).catch(() => null);
  if (cache) {
    const kept = await readKept(cache);
    if (kept) return kept;
  }
  const probe = await probeNow(options);
  if (cache) await keep(cache, probe).catch(() => undefined);
  return probe;
}

interface CacheFile { path: string; bootId: string }

/** The answer depends on this boot, the device, the qemu binary and the kernel booted. */
async function cacheFileOf(options: ProbeOptions, dir: string): Promise<CacheFile> {
  const bootId = (await readFile(BOOT_ID, 'utf8')).trim();
  const kernel = await stat(options.kernel);
  const key = createHash('sha256')
    .update(JSON.stringify([options.kvmDevice ?? '/dev/kvm', options.qemu ?? 'qemu-system-x86_64', options.kernel, kernel.size, kernel.mtimeMs, options.timeoutMs ?? null]))
    .digest('hex').slice(0, 32);
  return { path: join(dir, `${key}.json`), bootId };
}

async function readKept(cache: CacheFile): Promise<AcceleratorProbe | null> {
  try {
    const kept = JSON.parse(await readFile(cache.path, 'utf8')) as { bootId?: unknown; accelerator?: unknown; reason?: unknown };
    if (kept.bootId !== cache.bootId || (kept.accelerator !== 'kvm' && kept.accelerator !== 'tcg') || typeof kept.reason !== 'string') return null;
    return { accelerator: kept.accelerator, reason: `${kept.reason} (probed once this boot)` };
  } catch {
    return null;
  }
}

async function keep(cache: CacheFile, probe: AcceleratorProbe): Promise<void> {
  const dir = dirname(cache.path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${cache.path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ bootId: cache.bootId, ...probe }), { mode: 0o600 });
  await rename(tmp, cache.path);
}

async function probeNow(options: ProbeOptions): Promise<AcceleratorProbe> {
  const device = options.kvmDevice ?? '/dev/kvm';
  const timeoutMs = options.timeoutMs ?? 8000;
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch {
    return { accelerator: 'tcg', reason: `${device} is not usable` };
  }
  return new Promise((resolve) => {
    const child = spawn(options.qemu ?? 'qemu-system-x86_64', [
      '-accel', 'kvm', '-machine', 'pc', '-m', '64', '-nodefaults', '-display', 'none', '-no-reboot',
      '-kernel', options.kernel, '-append', 'console=ttyS0 panic=-1', '-serial', 'stdio',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let settled = false;
    const finish = (result: AcceleratorProbe): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(result);
    };
    const timer = setTimeout(() => finish({ accelerator: 'tcg', reason: `a KVM guest printed nothing within ${timeoutMs} ms` }), timeoutMs);
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4096);
      if (output.includes(BANNER)) finish({ accelerator: 'kvm', reason: 'a KVM guest booted' });
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4096); });
    child.on('error', (err) => finish({ accelerator: 'tcg', reason: `qemu could not run: ${err.message}` }));
    child.on('close', (code) => finish({ accelerator: 'tcg', reason: `a KVM guest failed (qemu exit ${code}): ${output.trim().split('\n').at(-1) ?? ''}` }));
  });
}
