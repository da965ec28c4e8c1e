// zone image box: the node image as a vagrant-libvirt box, a tar of
//   metadata.json  {"provider": "libvirt", "format": "qcow2", "virtual_size": GB}
//   Vagrantfile    the box's defaults (boxVagrantfile below)
//   box.img        the node's qcow2 disk
//   vmlinuz, initrd  the image's kernel and initrd, when it boots them directly (the node
//                  image has no boot loader on its disk); without them the disk boots itself.
// The tar is written with fixed times and owners, so the same inputs give the same box.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { runCommand } from '../../lib/exec.ts';

/** Where vagrant-libvirt keeps its volumes (the `default` pool it makes); qemu reads the kernel from there. */
export const POOL_DIR = '/var/lib/libvirt/images';

export interface BoxInput {
  /** The node's qcow2 disk. */
  disk: string;
  /** Direct kernel boot: the kernel, its initrd and command line. */
  boot?: { kernel: string; initrd: string; cmdline: string };
}

export interface BoxSummary {
  out: string;
  bytes: number;
  virtualSizeGb: number;
  /** The kernel and initrd's digest (their names on the host, below POOL_DIR), when the box carries them. */
  bootDigest?: string;
}

/** The sibling files `zone image build --out X.qcow2` writes: X.vmlinuz and X.initrd. */
export function bootFilesBeside(disk: string): { kernel: string; initrd: string } | null {
  const stem = disk.replace(/\.qcow2$/, '');
  const files = { kernel: `${stem}.vmlinuz`, initrd: `${stem}.initrd` };
  return existsSync(files.kernel) && existsSync(files.initrd) ? files : null;
}

/** The disk's format and size as qemu-img reads them; refuses anything but qcow2. */
async function qcow2VirtualSize(disk: string): Promise<number> {
  let info: { format?: string; 'virtual-size'?: number };
  try {
    info = JSON.parse(await runCommand(['qemu-img', 'info', '--output=json', disk])) as typeof info;
  } catch (err) {
    throw new Error(`${disk}: qemu-img cannot read it (${(err as Error).message.split('\n')[0]})`, { cause: err });
  }
  if (info.format !== 'qcow2') throw new Error(`${disk}: a ${info.format ?? 'unknown'} disk; a vagrant-libvirt box holds a qcow2 (qemu-img convert -O qcow2)`);
  const size = info['virtual-size'];
  if (!size || size <= 0) throw new Error(`${disk}: qemu-img gives no virtual size`);
  return size;
}

async function sha256Files(paths: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** Ruby string literal (double quotes: backslashes, quotes and interpolation escaped). */
const rubyString = (s: string) => `"${s.replace(/[\\"#]/g, (c) => `\\${c}`)}"`;

/**
 * The box's Vagrantfile, merged under the user's. The node offers no login, so no synced
 * folder. With a kernel: qemu runs as its own user and cannot read VAGRANT_HOME (often
 * below a 0700 home), so the kernel and initrd are copied beside vagrant-libvirt's volumes
 * (named by their digest) before the first `up`, and booted from there.
 */
export function boxVagrantfile(boot?: { cmdline: string; digest: string }): string {
  const lines = [
    '# The Zone node box, written by `zone image box`. The node offers no login: no SSH,',
    '# no synced folder; the Vagrantfile that uses it says how vagrant knows the node is up.',
    'Vagrant.configure("2") do |config|',
    '  config.vm.synced_folder ".", "/vagrant", disabled: true',
  ];
  if (boot) {
    const stem = `${POOL_DIR}/zone-node-${boot.digest.slice(0, 24)}`;
    lines.push(
      '  # qemu runs as its own user, which cannot read VAGRANT_HOME: it boots the kernel and',
      '  # initrd from copies beside vagrant-libvirt\'s volumes, made before the first `up`.',
      `  stem = ${rubyString(stem)}`,
      '  box = __dir__',
      '  config.vm.provider :libvirt do |libvirt|',
      '    libvirt.kernel = "#{stem}.vmlinuz"',
      '    libvirt.initrd = "#{stem}.initrd"',
      `    libvirt.cmd_line = ${rubyString(boot.cmdline)}`,
      '  end',
      '  config.trigger.before :up do |t|',
      '    t.info = "Zone node box: kernel and initrd to #{stem}.*"',
      '    t.ruby do |_env, _machine|',
      '      require "fileutils"',
      '      FileUtils.mkdir_p(File.dirname(stem))',
      '      { "vmlinuz" => "#{stem}.vmlinuz", "initrd" => "#{stem}.initrd" }.each do |name, to|',
      '        next if File.exist?(to)',
      '        FileUtils.cp(File.join(box, name), "#{to}.tmp")',
      '        File.chmod(0o644, "#{to}.tmp")',
      '        File.rename("#{to}.tmp", to)',
      '      end',
      '    end',
      '  end',
    );
  }
  lines.push('end', '');
  return lines.join('\n');
}

/** Writes the box at `out` (through a temporary file beside it). */
export async function writeVagrantBox(input: BoxInput, out: string): Promise<BoxSummary> {
  const virtualSize = await qcow2VirtualSize(input.disk);
  if (input.boot) {
    for (const [field, path] of [['kernel', input.boot.kernel], ['initrd', input.boot.initrd]] as const) {
      if (!(await stat(path).then((s) => s.isFile(), () => false))) throw new Error(`${field} ${path}: no such file`);
    }
    if (!input.boot.cmdline.trim() || /[\n\r]/.test(input.boot.cmdline)) throw new Error('cmdline: one line, not empty');
  }
  const virtualSizeGb = Math.ceil(virtualSize / 2 ** 30);
  const bootDigest = input.boot ? await sha256Files([input.boot.kernel, input.boot.initrd]) : undefined;
  const metadata = JSON.stringify({ provider: 'libvirt', format: 'qcow2', virtual_size: virtualSizeGb }, null, 2) + '\n';
  const vagrantfile = boxVagrantfile(input.boot && bootDigest ? { cmdline: input.boot.cmdline, digest: bootDigest } : undefined);

  const tmp = `${out}.partial`;
  const tar = pack();
  const written = pipeline(tar, createWriteStream(tmp, { mode: 0o644 }));
  const header = (name: string, size: number) => ({ name, size, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: 'root', gname: 'root' });
  const addFile = async (name: string, path: string) => {
    const size = (await stat(path)).size;
    const entry = tar.entry(header(name, size));
    await pipeline(createReadStream(path), entry);
  };
  try {
    tar.entry(header('metadata.json', Buffer.byteLength(metadata)), metadata);
    tar.entry(header('Vagrantfile', Buffer.byteLength(vagrantfile)), vagrantfile);
    await addFile('box.img', input.disk);
    if (input.boot) {
      await addFile('vmlinuz', input.boot.kernel);
      await addFile('initrd', input.boot.initrd);
    }
    tar.finalize();
    await written;
    await rename(tmp, out);
  } catch (err) {
    tar.destroy();
    await written.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  return { out, bytes: (await stat(out)).size, virtualSizeGb, ...(bootDigest ? { bootDigest } : {}) };
}
