// zone image build: the bootable node image. Three parts, cached apart by the digest of
// their inputs under $ZONE_CACHE/node-image (default /var/cache/zone):
//   base-DIGEST.tar  Debian 12 made offline by mmdebstrap from Debian's packages (the
//                    engines, busybox for init); its digest covers the package list only,
//                    so a change of Zone's code does not fetch Debian again.
//   DIGEST/          the image: zone-node.qcow2 (one ext4 file system, no partition table,
//                    no boot loader), zone-node.vmlinuz and zone-node.initrd, booted with
//                    libvirt's <kernel>/<initrd> (`root=/dev/vda`, see bootCommandLine).
// The kernel is the stock Debian kernel setup-host caches for VMs (linux-image-amd64, the
// one the libvirt driver boots), its modules copied into the image; the initrd is tiny
// (busybox and the modules the root disk needs). That boots faster under TCG than a
// boot loader and Debian's initramfs, and makes the image without mounting anything.
// What the guest runs is in ./guest/ (busybox init, its scripts).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../../lib/exec.ts';
import { collectRelease, packageJsonOf } from '../release/collect.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const GUEST = join(REPO, 'cli/node-image/guest');
/** Bumped when the image's layout changes, so older cached images are not reused. */
const FORMAT = 'zone-node-image-v1';
const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
/** What the node needs from Debian; their dependencies come with them. */
export const PACKAGES = [
  'docker.io', 'nats-server', 'wireguard-tools', 'wireguard-go', 'fuse3', 'libfuse2', 'iproute2', 'nftables', 'iptables',
  'ca-certificates', 'kmod', 'busybox-static', 'procps', 'libstdc++6',
  // The libvirt driver's binding links libvirt's client library; without it the driver
  // fails to load at every pass. libvirtd itself is not in the image (no nested VMs).
  'libvirt0',
];
/** Debian's docs, manuals and translations: nothing on a node reads them. */
const DPKG_EXCLUDES = ['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*', '/usr/share/locale/*', '/usr/share/lintian/*'];
/** Module folders of the stock kernel a node never loads (graphics, sound, radios, media, ...). */
const MODULES_SKIPPED = ['drivers/gpu', 'drivers/media', 'drivers/infiniband', 'drivers/net/wireless', 'drivers/staging', 'drivers/scsi', 'drivers/iio', 'drivers/bluetooth', 'sound', 'net/bluetooth', 'net/mac80211', 'net/wireless'];
/** The modules the initrd loads (with what they depend on) to mount the root disk. */
const INITRD_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];
/** The root file system's size (sparse: the qcow2 holds only what is written). */
const ROOT_BYTES = 8 * 2 ** 30;
/** Fixed so that the same inputs give the same file system. */
const ROOT_UUID = '5a0e5a0e-0000-4000-8000-00000000a0de';
const ROOT_HASH_SEED = '5a0e5a0e-0000-4000-8000-0000000ba5e5';

/** Why the image cannot be built here (a missing tool, kernel or base image). */
export class NodeImageError extends Error {
  override name = 'NodeImageError';
}

export interface NodeImage {
  digest: string;
  /** The node's disk: use it as a backing file, never write to it. */
  disk: string;
  kernel: string;
  initrd: string;
  /** Whether this run built it (false: it was in the cache). */
  built: boolean;
  seconds: number;
}

export interface BuildOptions {
  /** Where the parts are cached (default $ZONE_CACHE/node-image, $ZONE_CACHE defaulting to /var/cache/zone). */
  cacheDir?: string;
  /** Kernel and modules cached by setup-host. */
  kernelDir?: string;
  /** Progress lines (what is being built). */
  log?: (line: string) => void;
}

/**
 * The kernel command line the image boots with. `loglevel=5`: the serial console gets the
 * kernel's warnings and worse (a NETDEV WATCHDOG or any WARN is KERN_WARNING; an OOM kill,
 * a hung task or an RCU stall KERN_ERR), which is how a node that stops answering is read;
 * `quiet` keeps the boot's info lines off it. Not an input of the image's digest: libvirt
 * (or Vagrant) hands it to the kernel at each boot.
 */
export function bootCommandLine(): string {
  return 'root=/dev/vda console=ttyS0 quiet loglevel=5 panic=5';
}

export function defaultCacheDir(): string {
  return join(process.env.ZONE_CACHE ?? '/var/cache/zone', 'node-image');
}

const sh = (command: string[], timeoutMs = 30 * 60_000) => runCommand(command, { timeoutMs });

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

const digestOf = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 24);

/** Every file below `dir` (relative paths, sorted) with its digest and mode. */
async function treeDigest(dir: string): Promise<[string, string, number][]> {
  const out: [string, string, number][] = [];
  for (const rel of ((await readdir(dir, { recursive: true })) as string[]).sort()) {
    const s = await stat(join(dir, rel));
    if (s.isFile()) out.push([rel, await sha256File(join(dir, rel)), s.mode & 0o777]);
  }
  return out;
}

/** A fixed time for every file of the image: SOURCE_DATE_EPOCH, or the epoch of the format. */
function sourceDateEpoch(): number {
  const value = Number(process.env.SOURCE_DATE_EPOCH ?? 1_767_225_600); // 2026-01-01
  if (!Number.isInteger(value) || value < 0) throw new RangeError('$SOURCE_DATE_EPOCH must be a whole number of seconds since 1970');
  return value;
}

/** The kernel's release (e.g. 6.1.0-40-amd64), read from a module's vermagic. */
async function kernelRelease(modules: string): Promise<string> {
  const vermagic = await sh(['modinfo', '-F', 'vermagic', join(modules, 'kernel/fs/ext4/ext4.ko')]);
  const release = vermagic.trim().split(/\s+/)[0];
  if (!release || !/^[0-9][A-Za-z0-9.+_-]*$/.test(release)) throw new NodeImageError(`cannot tell the kernel's release from ${modules} (vermagic "${vermagic.trim()}")`);
  return release;
}

/** Debian's part, made once per package list (and mirror, suite): the longest step. */
async function baseRootfs(cacheDir: string, epoch: number, log: (l: string) => void): Promise<string> {
  const digest = digestOf({ FORMAT, SUITE, MIRROR, PACKAGES, DPKG_EXCLUDES, epoch });
  const tar = join(cacheDir, `base-${digest}.tar`);
  if (existsSync(tar)) return tar;
  log(`fetching Debian ${SUITE} with ${PACKAGES.join(', ')} (mmdebstrap)`);
  const partial = `${tar}.partial`;
  await rm(partial, { force: true });
  await sh(['env', `SOURCE_DATE_EPOCH=${epoch}`, 'mmdebstrap', '--quiet', '--variant=essential', '--mode=root', '--format=tar',
    `--include=${PACKAGES.join(',')}`, '--aptopt=APT::Install-Recommends "false"',
    ...DPKG_EXCLUDES.map((p) => `--dpkgopt=path-exclude=${p}`),
    SUITE, partial, MIRROR]);
  await rename(partial, tar);
  return tar;
}

/** Builds the image, or finds it in the cache. */
export async function buildNodeImage(options: BuildOptions = {}): Promise<NodeImage> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const kernelDir = options.kernelDir ?? join(process.env.ZONE_CACHE ?? '/var/cache/zone', 'kernel');
  const vmlinuz = join(kernelDir, 'vmlinuz');
  if (!existsSync(vmlinuz)) throw new NodeImageError(`no VM kernel in ${kernelDir}: run scripts/setup-host (it caches Debian's linux-image-amd64)`);
  if (process.getuid?.() !== 0) throw new NodeImageError('zone image build needs root (mmdebstrap, file owners in the image)');
  await mkdir(cacheDir, { recursive: true });
  const epoch = sourceDateEpoch();

  const pkg = await packageJsonOf(REPO);
  const release = await collectRelease(REPO, pkg.bytes);
  const busyboxImage = (await sh(['docker', 'image', 'inspect', '--format', '{{.Id}}', 'zone/busybox:latest']).catch(() => '')).trim();
  if (!busyboxImage) throw new NodeImageError('the image zone/busybox:latest is not in the local dockerd: run scripts/setup-host');
  const base = await baseRootfs(cacheDir, epoch, log);
  const inputs = {
    FORMAT, base, epoch,
    guest: await treeDigest(GUEST),
    release: release.map((f) => [f.path, f.sha256, f.executable ?? false]),
    node: await sha256File(process.execPath),
    kernel: await sha256File(vmlinuz),
    modules: await sha256File(join(kernelDir, 'modules/modules.order')),
    busybox: await sha256File('/bin/busybox'),
    busyboxImage,
    fifoWaiters: existsSync(FIFO_WAITERS) ? await sha256File(FIFO_WAITERS) : null,
    MODULES_SKIPPED, INITRD_MODULES, ROOT_BYTES,
  };
  const digest = digestOf(inputs);
  const dir = join(cacheDir, digest);
  const image = { digest, disk: join(dir, 'zone-node.qcow2'), kernel: join(dir, 'zone-node.vmlinuz'), initrd: join(dir, 'zone-node.initrd') };
  if (existsSync(join(dir, 'inputs.json'))) return { ...image, built: false, seconds: (Date.now() - started) / 1000 };

  const work = await mkdtemp(join(cacheDir, 'build-'));
  try {
    const root = join(work, 'root');
    await mkdir(root);
    log('assembling the root file system');
    await sh(['tar', '-C', root, '--numeric-owner', '-xpf', base]);
    const kernel = await kernelRelease(join(kernelDir, 'modules'));
    await installModules(join(kernelDir, 'modules'), root, kernel);
    await installZone(root, release);
    await installGuest(root);
    await saveBusyboxImage(root);
    log('compiling Zone\'s TypeScript once (the tsx cache the first boot reads)');
    await warmTsxCache(root);
    await writeInitrd(work, root, kernel, join(work, 'initrd'), epoch);
    log('making the disk (ext4, qcow2)');
    await writeRootDisk(root, join(work, 'root.raw'), epoch);
    const out = join(work, 'out');
    await mkdir(out);
    await sh(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', join(work, 'root.raw'), join(out, 'zone-node.qcow2')]);
    await copyFile(vmlinuz, join(out, 'zone-node.vmlinuz'));
    await rename(join(work, 'initrd'), join(out, 'zone-node.initrd'));
    // Read-only: every node's disk is an overlay on this one.
    for (const f of await readdir(out)) await chmod(join(out, f), 0o444);
    await writeFile(join(out, 'inputs.json'), JSON.stringify({ ...inputs, release: inputs.release.length }, null, 2) + '\n');
    await rm(dir, { recursive: true, force: true });
    await rename(out, dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await pruneImages(cacheDir, IMAGES_KEPT);
  return { ...image, built: true, seconds: (Date.now() - started) / 1000 };
}

/** Images kept in the cache: each is most of a GiB, and every change of Zone's code makes a new one. */
const IMAGES_KEPT = 3;

/** Removes all but the `kept` newest images (a cluster still running on an older one keeps its open file). */
async function pruneImages(cacheDir: string, kept: number): Promise<void> {
  const images = [];
  for (const name of await readdir(cacheDir)) {
    if (!/^[0-9a-f]{24}$/.test(name)) continue;
    images.push({ name, mtime: (await stat(join(cacheDir, name))).mtimeMs });
  }
  images.sort((a, b) => b.mtime - a.mtime);
  for (const old of images.slice(kept)) await rm(join(cacheDir, old.name), { recursive: true, force: true });
}

const FIFO_WAITERS = '/usr/local/lib/zone/fifo-waiters';

/** The kernel's modules, without the folders no node loads, indexed by depmod. */
async function installModules(modules: string, root: string, kernel: string): Promise<void> {
  const target = join(root, 'lib/modules', kernel);
  await mkdir(dirname(target), { recursive: true });
  await sh(['cp', '-a', modules, target]);
  for (const skipped of MODULES_SKIPPED) await rm(join(target, 'kernel', skipped), { recursive: true, force: true });
  await sh(['depmod', '-b', root, kernel]);
}

/** Zone's release files at /opt/zone, the host's Node 20 and the FIFO helper. */
async function installZone(root: string, release: Awaited<ReturnType<typeof collectRelease>>): Promise<void> {
  const zone = join(root, 'opt/zone');
  const pkg = await packageJsonOf(REPO);
  for (const file of release) {
    const to = join(zone, file.path);
    await mkdir(dirname(to), { recursive: true });
    if (file.path === 'package.json') await writeFile(to, pkg.bytes);
    else await copyFile(file.source, to);
    await chmod(to, file.executable ? 0o755 : 0o644);
  }
  await copyFile(process.execPath, join(root, 'usr/local/bin/node'));
  await chmod(join(root, 'usr/local/bin/node'), 0o755);
  if (existsSync(FIFO_WAITERS)) {
    await mkdir(join(root, dirname(FIFO_WAITERS)), { recursive: true });
    await copyFile(FIFO_WAITERS, join(root, FIFO_WAITERS));
    await chmod(join(root, FIFO_WAITERS), 0o755);
  }
}

/** busybox init and its scripts, and what Debian's packages leave to a booted system. */
async function installGuest(root: string): Promise<void> {
  const boot = join(root, 'usr/lib/zone/boot');
  await mkdir(boot, { recursive: true });
  for (const name of ['sysinit', 'dockerd', 'appliance', 'shutdown']) await copyFile(join(GUEST, name), join(boot, name));
  await sh(['cp', '-a', join(GUEST, 'acpi'), join(boot, 'acpi')]);
  await copyFile(join(GUEST, 'inittab'), join(root, 'etc/inittab'));
  await rm(join(root, 'sbin/init'), { force: true });
  await symlink('/bin/busybox', join(root, 'sbin/init'));
  // fuse-native unmounts with `fusermount`; Debian ships fuse3's fusermount3 (the same protocol).
  if (!existsSync(join(root, 'usr/bin/fusermount'))) await symlink('fusermount3', join(root, 'usr/bin/fusermount'));
  await writeFile(join(root, 'etc/hostname'), 'zone-node\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost zone-node\n::1 localhost\n');
  await writeFile(join(root, 'etc/fstab'), '/dev/vda / ext4 rw,noatime 0 1\n');
  // No login: root has no password that works, and nothing offers a terminal.
  await sh(['sed', '-i', 's/^root:[^:]*:/root:*:/', join(root, 'etc/shadow')]);
  // Machine-specific files a booted system makes for itself.
  await rm(join(root, 'etc/machine-id'), { force: true });
  await writeFile(join(root, 'etc/machine-id'), '');
}

/** What the appliance and its supervisor load; their entry points (main.ts) run, so they are left out. */
const WARMED_MODULES = ['api/server.ts', 'appliance/appliance.ts', 'appliance/drivers.ts', 'appliance/firewall/firewall.ts', 'appliance/read-protection.ts', 'appliance/supervisor/supervisor.ts', 'appliance/supervisor/child.ts'];

/**
 * tsx compiles each TypeScript file when it is first loaded and keeps the result in
 * /tmp/tsx-0, keyed by the file's contents and path: compiled here, in the image's root
 * (the same paths), so that a node under TCG does not spend minutes compiling at its first
 * boot. The cache's file names carry the build's day (tsx expires them after about a week
 * of not being used... by their day), which is why the image's digest depends on the day
 * it was built.
 */
async function warmTsxCache(root: string): Promise<void> {
  const imports = WARMED_MODULES.map((m) => `await import(${JSON.stringify(`/opt/zone/${m}`)});`).join(' ');
  // A clean environment: the caller's NODE_OPTIONS (a test runner's loaders) are not in the image.
  await sh(['chroot', root, '/usr/bin/env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/root', 'TMPDIR=/tmp',
    '/bin/sh', '-c', 'cd /opt/zone && exec node --import tsx --input-type=module -e "$1"', 'sh', imports], 10 * 60_000);
}

/** zone/busybox as `docker save` writes it, loaded on the first boot. */
async function saveBusyboxImage(root: string): Promise<void> {
  const to = join(root, 'usr/lib/zone/images/busybox.tar');
  await mkdir(dirname(to), { recursive: true });
  await sh(['docker', 'save', '-o', to, 'zone/busybox:latest']);
}

/** The initrd: busybox, the root disk's modules in load order (modprobe says which), /init. */
async function writeInitrd(work: string, root: string, kernel: string, out: string, epoch: number): Promise<void> {
  const dir = join(work, 'initrd-root');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'lib/modules'), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
  await copyFile(join(GUEST, 'initrd-init'), join(dir, 'init'));
  await chmod(join(dir, 'init'), 0o755);
  const lines = await sh(['modprobe', '-a', '-d', root, '-S', kernel, '--show-depends', ...INITRD_MODULES]);
  const list: string[] = [];
  for (const line of lines.split('\n')) {
    const path = /^insmod (\S+\.ko(?:\.xz|\.zst)?)/.exec(line.trim())?.[1];
    if (!path) continue;
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (list.includes(`/lib/modules/${name}`)) continue;
    await copyFile(path, join(dir, 'lib/modules', name));
    list.push(`/lib/modules/${name}`);
  }
  await writeFile(join(dir, 'modules.list'), list.join('\n') + '\n');
  await sh(['find', dir, '-exec', 'touch', '-h', '-d', `@${epoch}`, '{}', '+']);
  await sh(['sh', '-c', `cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null --reproducible -o -H newc --owner=0:0 --quiet | gzip -9 -n > "$2"`, 'sh', dir, out]);
}

/** One ext4 file system holding `root`, every time fixed, its identifiers fixed. */
async function writeRootDisk(root: string, raw: string, epoch: number): Promise<void> {
  await sh(['find', root, '-exec', 'touch', '-h', '-d', `@${epoch}`, '{}', '+']);
  await writeFile(raw, '');
  await sh(['truncate', '-s', String(ROOT_BYTES), raw]);
  await sh(['env', `E2FSPROGS_FAKE_TIME=${epoch}`, 'mkfs.ext4', '-q', '-F', '-L', 'zone-root', '-U', ROOT_UUID,
    '-E', `hash_seed=${ROOT_HASH_SEED},lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0`, '-d', root, raw]);
}
