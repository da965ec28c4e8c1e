// The node image as a machine, measured in one run (the accelerator is named in the output):
//  (1) `zone image build`'s assembly (Zone, Node 20, the initrd, ext4, qcow2) in a fresh
//      cache, the Debian part (mmdebstrap) reused from the default cache, and the sizes;
//      baseline: copying the finished qcow2 (what any image build at least costs);
//  (2) boot to the API answering: `zone cluster up 1 --vm` until its node's API answers;
//      baseline: the same kernel booting a busybox initrd until its /init prints a line;
//  (3) `zone cluster up 3 --vm` until all three nodes answer, against (2).
// (2) and (3) boot VMs: run them under `flock /tmp/zone-vm.lock flock /tmp/zone-cluster.lock`.
// Run: node --import tsx bench/node-image.ts [build] [boot]   (both by default)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { probeAccelerator } from '../drivers/libvirt/accelerator.ts';
import { buildNodeImage, defaultCacheDir } from '../cli/node-image/build.ts';
import { nodeDomainXml } from '../cli/cluster/vm-domain.ts';

const run = promisify(execFile);
const ZONE = fileURLToPath(new URL('../cli/zone.sh', import.meta.url));
const BOUND_MS = 900_000;
const MARKER = 'zone-bench: userspace';
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const virsh = (...args: string[]) => run('virsh', ['-c', 'qemu:///system', '-q', ...args]);

const work = await mkdtemp(join(tmpdir(), 'zone-bench-image-'));
await chmod(work, 0o711); // qemu, as its own user, reads the baseline's files here

/** (1) The image assembled in a fresh cache holding only the Debian part. */
async function imageBuild(): Promise<{ ms: number; copyMs: number; disk: number; allocated: number; kernel: number; initrd: number; image: Awaited<ReturnType<typeof buildNodeImage>> }> {
  const shared = defaultCacheDir();
  const image = await buildNodeImage({ log: (l) => console.error(`  ${l}`) }); // the Debian part, cached for the runs after
  const cache = join(work, 'cache');
  await mkdir(cache);
  for (const f of await readdir(shared)) if (/^base-.*\.tar$/.test(f)) await link(join(shared, f), join(cache, f));
  const t0 = Date.now();
  const fresh = await buildNodeImage({ cacheDir: cache });
  const ms = Date.now() - t0;
  if (!fresh.built) throw new Error('the fresh cache had the image already');
  const t1 = Date.now();
  await copyFile(fresh.disk, join(work, 'copy.qcow2'));
  const copyMs = Date.now() - t1;
  const info = JSON.parse((await run('qemu-img', ['info', '--output=json', fresh.disk])).stdout) as { 'actual-size': number };
  const sizes = { disk: (await stat(fresh.disk)).size, allocated: info['actual-size'], kernel: (await stat(fresh.kernel)).size, initrd: (await stat(fresh.initrd)).size };
  await rm(cache, { recursive: true, force: true });
  await rm(join(work, 'copy.qcow2'), { force: true });
  return { ms, copyMs, ...sizes, image };
}

/** Baseline of (2): the node kernel with a busybox initrd whose /init prints MARKER; ms from `virsh create` to the line. */
async function bareBoot(kernel: string, accelerator: 'kvm' | 'tcg'): Promise<number> {
  const root = join(work, 'initrd-root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'dev'));
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  // An initramfs has no device nodes of its own: /dev/ttyS0 comes with devtmpfs.
  await writeFile(join(root, 'init'), `#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n/bin/busybox echo "${MARKER}" > /dev/ttyS0\n/bin/busybox poweroff -f\n`, { mode: 0o755 });
  const initrd = join(work, 'bare.initrd');
  await run('sh', ['-c', 'cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"', 'sh', root, initrd]);
  const disk = join(work, 'bare.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const cfg = join(work, 'bare-cfg.img');
  await run('qemu-img', ['create', '-q', '-f', 'raw', cfg, '1M']);
  const log = join(work, 'bare-console.log');
  const name = `zone-bench-bare-${process.pid}`;
  const xml = nodeDomainXml({
    name, accelerator, vcpus: 2, memoryMiB: 512, kernel, initrd, cmdline: 'console=ttyS0 quiet loglevel=3 panic=5',
    disk, configDisk: cfg, bridge: 'virbr-none', mac: '52:54:00:0a:da:01', consoleLog: log,
  }).replace(/<interface[\s\S]*?<\/interface>\s*/, ''); // no NIC: nothing to plug it in
  await writeFile(join(work, 'bare.xml'), xml);
  const t0 = Date.now();
  await virsh('create', join(work, 'bare.xml'));
  try {
    for (;;) {
      if ((await readFile(log, 'utf8').catch(() => '')).includes(MARKER)) return Date.now() - t0;
      if (Date.now() - t0 > BOUND_MS) throw new Error(`the bare guest printed nothing within ${BOUND_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await virsh('destroy', name).catch(() => undefined);
  }
}

/** (2), (3): `zone cluster up N --vm` until every node answers (the command returns then); `down` after. */
async function clusterUp(n: number, subnet: string): Promise<number> {
  const dir = join(work, `cluster${n}`);
  const t0 = Date.now();
  try {
    await run(ZONE, ['cluster', 'up', String(n), '--vm', '--name', `bim${n}`, '--dir', dir, '--subnet', subnet], { timeout: BOUND_MS });
    return Date.now() - t0;
  } finally {
    if (existsSync(join(dir, 'cluster.json'))) await run(ZONE, ['cluster', 'down', '--name', `bim${n}`, '--dir', dir], { timeout: 120_000 });
  }
}

const parts = process.argv.slice(2);
const wanted = (part: string) => parts.length === 0 || parts.includes(part);
try {
  const image = wanted('build') ? (await reportBuild()).image : await buildNodeImage();
  const accelerator = await probeAccelerator({ kernel: image.kernel });
  console.log(`accelerator: ${accelerator.accelerator} (${accelerator.reason})`);
  if (wanted('boot')) {
    const bare = await bareBoot(image.kernel, accelerator.accelerator);
    const one = await clusterUp(1, '10.218.1.0/24');
    console.log(`boot to API answering (${accelerator.accelerator}): zone cluster up 1 --vm ${secs(one)}; bare kernel+busybox initrd to userspace ${secs(bare)}, ratio ${(one / bare).toFixed(1)}`);
    const three = await clusterUp(3, '10.218.3.0/24');
    console.log(`zone cluster up 3 --vm to all answering (${accelerator.accelerator}): ${secs(three)}; one node ${secs(one)}, ratio ${(three / one).toFixed(2)}`);
  }
  if (accelerator.accelerator !== 'kvm') console.log('KVM: not measured (no usable KVM on this machine)');
} finally {
  await rm(work, { recursive: true, force: true });
}

async function reportBuild() {
  const built = await imageBuild();
  console.log(`image build (Debian part cached): ${secs(built.ms)}; copying the qcow2 ${secs(built.copyMs)}, ratio ${(built.ms / built.copyMs).toFixed(1)}`);
  console.log(`image size: qcow2 ${mib(built.disk)} (${mib(built.allocated)} allocated), kernel ${mib(built.kernel)}, initrd ${(built.initrd / 2 ** 20).toFixed(1)} MiB`);
  return built;
}
