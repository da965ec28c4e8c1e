// Which accelerator VMs get, decided by a real probe: /dev/kvm may exist and still not run a
// guest (nested KVM on these machines hangs), so a tiny qemu boots the VM kernel with KVM and
// must print the kernel banner within the time limit; otherwise guests use TCG.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
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
}

const BANNER = 'Linux version';

export async function probeAccelerator(options: ProbeOptions): Promise<AcceleratorProbe> {
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
