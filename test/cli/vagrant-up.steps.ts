// `vagrant up` of one node from the top-level Vagrantfile: the node image (built, or found
// in the cache) made a box with `zone image box`, added under a VAGRANT_HOME of the test's
// own, brought up under vagrant-libvirt (TCG here) until vagrant says the node is ready,
// which it says once the node's API answers; the node answering is the one its config
// disk made. A grid of its own (ZONE_VAGRANT_NAME, ZONE_VAGRANT_NET) beside a user's.
// Boots a VM: run it under `flock /tmp/zone-vm.lock`. Run by vagrant-up.test.ts when asked
// (ZONE_VAGRANT_UP=1); here three runs in a row
// passed in 240, 227 and 396 s (TCG, load 7 to 14; the last built the image, 29 s, and
// booted beside other helpers' tests): nearly all of it the node's boot (175 to 340 s); the
// box, its addition and vagrant-libvirt's upload of it into the pool take seconds.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bootFilesBeside, POOL_DIR, writeVagrantBox } from '../../cli/node-image/box.ts';
import { bootCommandLine, buildNodeImage } from '../../cli/node-image/build.ts';
import { holdExclusive } from '../helpers/exclusive.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NAME = 'zone-vtest';                   // unique to this file: domain zone-vtest-n1, network zone-vtest
const NET = '10.217.9';
const BOX = 'zone-vtest-box';
/** Under TCG on a loaded machine a node takes minutes to boot. */
const BOOT_MS = 15 * 60_000;

const dir = await mkdtemp(join(tmpdir(), 'zone-vagrant-up-'));
await chmod(dir, 0o711); // virtlogd writes the console log below it
const env: NodeJS.ProcessEnv = {
  ...process.env, VAGRANT_HOME: join(dir, 'vagrant.d'), VAGRANT_DOTFILE_PATH: join(dir, 'dot'), VAGRANT_CHECKPOINT_DISABLE: '1',
  ZONE_NODES: '1', ZONE_BOX: BOX, ZONE_VAGRANT_NAME: NAME, ZONE_VAGRANT_NET: NET,
};
delete env.NODE_OPTIONS; // tap's loaders: vagrant runs the CLI as a user's shell would
const virsh = (...args: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...args]);
/** The kernel and initrd copies this run made below POOL_DIR (the box's trigger makes them). */
let made: string[] = [];

/**
 * A line of vagrant's output as a terminal shows it: its progress meter redraws the line
 * (carriage returns, ANSI erase), which in a tap comment would end the TAP stream's line
 * and hide the assertions after it.
 */
// eslint-disable-next-line no-control-regex
const shown = (line: string) => line.slice(line.lastIndexOf('\r') + 1).replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');

/**
 * Runs vagrant; resolves with its output, each line stamped with the seconds since it
 * started (where a step's time goes), or rejects with that output.
 */
function vagrant(...args: string[]): Promise<{ stdout: string; seconds: number }> {
  const started = Date.now();
  const at = () => ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  return new Promise((resolve, reject) => {
    const child = spawn('vagrant', args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: BOOT_MS, killSignal: 'SIGKILL' });
    let out = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) out += `${at()} s ${shown(line)}\n`;
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (partial) out += `${at()} s ${shown(partial)}\n`;
      if (code === 0) resolve({ stdout: out, seconds: (Date.now() - started) / 1000 });
      else reject(new Error(`vagrant ${args.join(' ')}: exit ${code ?? signal}\n${stderr}\n${out}`));
    });
  });
}

// One TCG node VM at a time among the test files (test/cli/vm-cluster.test.ts boots one
// too): on 2 cores two booting at once each take twice as long. Taken last before the
// tests are queued: tap ends a file whose root test sits idle with a teardown set (as it
// did here when the setup awaited vagrant at the top level, and removed VAGRANT_HOME under it).
await holdExclusive('tcg-node-vm', 25 * 60_000);
t.setTimeout(25 * 60_000); // beyond tap's 600 s per file: an image build, a box and a TCG boot

t.teardown(async () => {
  await vagrant('destroy', '-f').catch(() => undefined);
  await virsh('destroy', `${NAME}-n1`).catch(() => undefined);
  await virsh('undefine', `${NAME}-n1`).catch(() => undefined);
  await virsh('net-destroy', NAME).catch(() => undefined);
  await virsh('net-undefine', NAME).catch(() => undefined);
  await vagrant('box', 'remove', '--force', BOX).catch(() => undefined);
  // vagrant-libvirt leaves the box's volume in the pool; and the kernel copies this run made.
  const volumes = (await virsh('vol-list', 'default').catch(() => ({ stdout: '' }))).stdout;
  for (const line of volumes.split('\n')) {
    const volume = line.trim().split(/\s+/)[0];
    if (volume?.startsWith(`${BOX}_vagrant_box_image_`) || volume === `${NAME}-n1.img` || made.includes(volume ?? '')) {
      await virsh('vol-delete', '--pool', 'default', volume!).catch(() => undefined);
    }
  }
  for (const file of [...made, `${NAME}-n1-config.img`]) await rm(join(POOL_DIR, file), { force: true });
  await virsh('pool-refresh', 'default').catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

t.test('the node image makes a box that vagrant adds under a VAGRANT_HOME of its own', async (t) => {
  // The image build runs the image's node in a chroot, which must not get tap's loaders (they are not in the image).
  delete process.env.NODE_OPTIONS;
  const image = await buildNodeImage();
  t.comment(`image ${image.built ? 'built' : 'found in the cache'}: ${image.seconds.toFixed(0)} s`);
  const boot = bootFilesBeside(image.disk);
  t.ok(boot, 'the image has its kernel and initrd beside its disk');
  const started = Date.now();
  const box = await writeVagrantBox({ disk: image.disk, boot: { ...boot!, cmdline: bootCommandLine() } }, join(dir, 'zone-node.box'));
  t.comment(`box written: ${((Date.now() - started) / 1000).toFixed(0)} s, ${(box.bytes / 2 ** 20).toFixed(0)} MiB`);
  const stem = `zone-node-${box.bootDigest!.slice(0, 24)}`;
  made = [`${stem}.vmlinuz`, `${stem}.initrd`].filter((f) => !existsSync(join(POOL_DIR, f)));
  const added = await vagrant('box', 'add', '--name', BOX, box.out);
  t.comment(`box added: ${added.seconds.toFixed(0)} s`);
  t.match(added.stdout, `Successfully added box '${BOX}' (v0) for 'libvirt'`);
  await rm(box.out);
});

t.test('vagrant up brings the node up and returns once its API answers', async (t) => {
  const { stdout, seconds } = await vagrant('up', '--provider', 'libvirt');
  t.comment(`vagrant up: ${seconds.toFixed(0)} s\n${stdout.trim()}`);
  t.match(stdout, `Zone: config disk of n1 (${NET}.11)`);
  t.match(stdout, `Image(vda):        ${POOL_DIR}/${NAME}-n1.img, virtio`);
  t.match(stdout, `Disk(vdb):         ${POOL_DIR}/${NAME}-n1-config.img`);
  t.match(stdout, 'Machine booted and ready!');
  const id = new RegExp(`node ([a-z0-9]+), API http://${NET.replaceAll('.', '\\.')}\\.11:7700`).exec(stdout)?.[1];
  t.ok(id, 'the config disk gave the node its identity');
  const res = await fetch(`http://${NET}.11:7700/healthz`, { signal: AbortSignal.timeout(10_000) });
  t.same(await res.json(), { ok: true, node: id }, 'the node answering is the one its config disk made');
  t.match((await vagrant('status', 'n1')).stdout, /n1\s+running \(libvirt\)/);
});

t.test('vagrant destroy removes the domain, its network and its config disk', async (t) => {
  await vagrant('destroy', '-f');
  t.notOk((await virsh('list', '--all', '--name')).stdout.split('\n').includes(`${NAME}-n1`), 'no domain');
  t.notOk((await virsh('net-list', '--all', '--name')).stdout.split('\n').map((l) => l.trim()).includes(NAME), 'no network');
  t.notOk(existsSync(join(POOL_DIR, `${NAME}-n1-config.img`)), 'no config disk');
});
