// qemu-img runs bounded in time, and never on what is not a regular image file
// (unit level: no VM is booted).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { diskImageInfo, DiskImageError, runQemuImg } from '../../../drivers/volumes/disk-image.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-qemu-img-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const fifo = join(dir, 'hangs');
execFileSync('mkfifo', [fifo]);

t.test('qemu-img on a FIFO nobody writes to is killed at its timeout', async (t) => {
  const started = Date.now();
  await t.rejects(runQemuImg(['info', '--output=json', fifo], `cannot read disk image ${fifo}`, 500), { message: /cannot read disk image .*hangs: qemu-img did not finish within 0.5 s/ });
  t.ok(Date.now() - started < 5000, 'it returned soon after the timeout');
  const left = execFileSync('sh', ['-c', `pgrep -f "[q]emu-img info --output=json ${fifo}" || true`], { encoding: 'utf8' }).trim();
  t.equal(left, '', 'no qemu-img process is left');
});

t.test('diskImageInfo refuses a FIFO (or a symlink to one) before running qemu-img, and reads a real image', async (t) => {
  symlinkSync(fifo, join(dir, 'link'));
  await t.rejects(diskImageInfo(fifo), { constructor: DiskImageError, message: /hangs is a FIFO/ });
  await t.rejects(diskImageInfo(join(dir, 'link')), { message: /link \(.*hangs\) is a FIFO/ });
  await t.rejects(diskImageInfo('/dev/null'), { message: /is a character device/ });
  const image = join(dir, 'base.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', image, '8M']);
  t.same(await diskImageInfo(image), { path: image, format: 'raw', virtualSize: 8 << 20 });
});
