// Whether this host can give VMs /zone: qemu's virtio-9p device and the kernel's 9p modules.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { probeZoneShare } from '../../../drivers/libvirt/zone-share.ts';

const KERNEL = '/var/cache/zone/kernel/vmlinuz';
const dir = mkdtempSync(join(tmpdir(), 'zone-share-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('this host\'s qemu and cached kernel can share /zone', async (t) => {
  t.same(probeZoneShare({ kernel: KERNEL }), { available: true });
});

t.test('a qemu without virtio-9p, or none at all, or a kernel without the modules says why', async (t) => {
  const bare = join(dir, 'qemu-bare');
  writeFileSync(bare, '#!/bin/sh\necho \'name "virtio-blk-pci", bus PCI\'\n', { mode: 0o755 });
  t.match(probeZoneShare({ kernel: KERNEL, qemu: bare }), { available: false, reason: /has no virtio-9p device/ });
  t.match(probeZoneShare({ kernel: KERNEL, qemu: join(dir, 'missing-qemu') }), { available: false, reason: /could not list its devices/ });
  t.match(probeZoneShare({ kernel: join(dir, 'vmlinuz') }), { available: false, reason: /9p modules are missing: .*9p\.ko/ });
});
