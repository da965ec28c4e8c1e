// VM disk images named by host path, checked on the host at admission (admission.ts
// checks the declared path against policy.vmImages; this checks what it is): after
// resolving symlinks it must still be under an allowed prefix and be a regular file,
// never a FIFO (qemu-img would hang on it), a device such as /dev/sda, or a directory.
import { realpathSync } from 'node:fs';
import type { Blueprint } from '../blueprints/schema.ts';
import { DiskImageError, regularImageFile } from '../drivers/volumes/disk-image.ts';
import { imageKindOf } from '../drivers/libvirt/spec.ts';
import { under, type NodePolicy } from './admission.ts';
import { ZoneError } from '../lib/errors.ts';

/** A prefix as the file system resolves it (itself when it does not exist). */
function resolved(prefix: string): string {
  try {
    return realpathSync(prefix);
  } catch {
    return prefix;
  }
}

/** Refuses (naming the field) a VM disk image that is not a regular file under policy.vmImages once resolved. */
export function checkVmImageFiles(bp: Blueprint, policy: Pick<NodePolicy, 'vmImages'>): void {
  if (bp.delete) return;
  (bp.workloads ?? []).forEach((w, i) => {
    if (w.kind !== 'vm' || imageKindOf(w.image) !== 'disk') return;
    const field = `/workloads/${i}/image`;
    let real: string;
    try {
      real = regularImageFile(w.image);
    } catch (err) {
      if (err instanceof DiskImageError) throw new ZoneError('INVALID', `workload ${w.name}: ${err.message}`, field);
      throw err;
    }
    const roots = policy.vmImages.map(resolved);
    if (!roots.some((root) => under(real, root))) {
      throw new ZoneError('POLICY', `workload ${w.name}: disk image ${w.image} resolves to ${real}, outside the node's policy.vmImages (${policy.vmImages.join(', ') || 'none'})`, field);
    }
  });
}
