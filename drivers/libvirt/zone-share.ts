// The pseudokernel's /zone in a VM: the host-side mount exported over virtio-9p, which the
// guest init mounts with modules copied from the cached kernel. Whether this host can is
// decided once per qemu binary and kernel, at construction (the driver's capabilities are
// fixed): qemu must have the virtio-9p device and the kernel cache the 9p modules.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The 9p tag the guest init mounts at /zone. */
export const ZONE_TAG = 'zone';

/** A kernel module: its path below the cached kernel's `modules/kernel/`, and where the guest init loads it from. */
export interface GuestModule {
  host: string;
  guest: string;
}

/** Modules by their path below `modules/kernel/`, loaded from `/lib/zone/` in the guest. */
export const guestModules = (paths: string[]): GuestModule[] =>
  paths.map((path) => ({ host: `modules/kernel/${path}`, guest: `/lib/zone/${path.slice(path.lastIndexOf('/') + 1)}` }));

/** The virtio PCI transport, which virtio disks and 9p both need (Debian builds them as modules), in load order. */
export const VIRTIO_MODULES = guestModules([
  'drivers/virtio/virtio_ring.ko', 'drivers/virtio/virtio.ko', 'drivers/virtio/virtio_pci_legacy_dev.ko',
  'drivers/virtio/virtio_pci_modern_dev.ko', 'drivers/virtio/virtio_pci.ko',
]);

/** 9p over virtio after the transport, each after its depends= (9p: 9pnet, fscache, netfs). */
export const ZONE_MODULES = guestModules([
  'fs/netfs/netfs.ko', 'fs/fscache/fscache.ko', 'net/9p/9pnet.ko', 'net/9p/9pnet_virtio.ko', 'fs/9p/9p.ko',
]);

export interface ZoneShareProbe {
  available: boolean;
  /** Why not, for the node's details. */
  reason?: string;
}

const probes = new Map<string, ZoneShareProbe>();

/** Whether VMs booted with `kernel` by `qemu` can get /zone; cached per pair. */
export function probeZoneShare(options: { kernel: string; qemu?: string }): ZoneShareProbe {
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const key = `${qemu}\0${options.kernel}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = probeOnce(qemu, options.kernel);
    probes.set(key, probe);
  }
  return probe;
}

function probeOnce(qemu: string, kernel: string): ZoneShareProbe {
  let devices: string;
  try {
    devices = execFileSync(qemu, ['-nodefaults', '-machine', 'none', '-device', 'help'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    return { available: false, reason: `${qemu} could not list its devices: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  if (!/name "virtio-9p-pci"/.test(devices)) return { available: false, reason: `${qemu} has no virtio-9p device (built without virtfs)` };
  const missing = [...VIRTIO_MODULES, ...ZONE_MODULES].map((m) => join(dirname(kernel), m.host)).filter((path) => !existsSync(path));
  if (missing.length) return { available: false, reason: `the VM kernel's 9p modules are missing: ${missing.join(', ')} (scripts/setup-host caches them with the kernel)` };
  return { available: true };
}
