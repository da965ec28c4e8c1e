import t, { type Test } from 'tap';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeAccelerator } from '../../../drivers/libvirt/accelerator.ts';

// A stand-in qemu that counts its runs and prints a kernel banner, as a KVM guest would.
async function fixture(t: Test) {
  const dir = t.testdir({ kernel: 'vmlinuz', kvm: '', 'runs.log': '' });
  const qemu = join(dir, 'qemu');
  await writeFile(qemu, `#!/bin/sh\necho run >> ${join(dir, 'runs.log')}\necho "Linux version 6.1"\nexec sleep 5\n`);
  await chmod(qemu, 0o755);
  const runs = async (): Promise<number> => (await readFile(join(dir, 'runs.log'), 'utf8')).split('\n').filter(Boolean).length;
  return { dir, runs, options: { kernel: join(dir, 'kernel'), kvmDevice: join(dir, 'kvm'), qemu, cacheDir: join(dir, 'cache') } };
}

t.test('the answer is probed once and kept for the boot; another kernel is probed again', async (t) => {
  const { dir, runs, options } = await fixture(t);
  t.same(await probeAccelerator(options), { accelerator: 'kvm', reason: 'a KVM guest booted' });
  t.equal(await runs(), 1);
  const again = await probeAccelerator(options);
  t.equal(again.accelerator, 'kvm');
  t.match(again.reason, /probed once this boot/);
  t.equal(await runs(), 1, 'the second answer came from the cache: qemu did not run');

  await writeFile(join(dir, 'kernel2'), 'another');
  await probeAccelerator({ ...options, kernel: join(dir, 'kernel2') });
  t.equal(await runs(), 2, 'a different kernel is a different question');
});

t.test('a damaged or foreign cache entry is probed again, and no cache means always probing', async (t) => {
  const { runs, options } = await fixture(t);
  await probeAccelerator(options);
  const [file] = await readdir(options.cacheDir);
  const path = join(options.cacheDir, file!);
  await writeFile(path, '{"bootId":"another boot","accelerator":"kvm","reason":"x"}');
  await probeAccelerator(options);
  t.equal(await runs(), 2, 'an answer from another boot is not trusted');
  await writeFile(path, 'not json');
  t.equal((await probeAccelerator(options)).accelerator, 'kvm');
  t.equal(await runs(), 3, 'a damaged entry is probed again');
  await probeAccelerator({ ...options, cacheDir: null });
  await probeAccelerator({ ...options, cacheDir: null });
  t.equal(await runs(), 5);
});

t.test('an unusable device answers tcg without running qemu', async (t) => {
  const { dir, runs, options } = await fixture(t);
  const probe = await probeAccelerator({ ...options, kvmDevice: join(dir, 'missing') });
  t.same(probe, { accelerator: 'tcg', reason: `${join(dir, 'missing')} is not usable` });
  t.equal(await runs(), 0);
});
