// `vagrant up` of one node from the top-level Vagrantfile: the node image (built, or found
// in the cache) made a box with `zone image box`, added under a VAGRANT_HOME of the test's
// own, brought up under vagrant-libvirt (TCG here) until vagrant says the node is ready,
// which it says once the node's API answers; the node answering is the one its config
// disk made. A grid of its own (ZONE_VAGRANT_NAME, ZONE_VAGRANT_NET) beside a user's.
// Boots a VM (under TCG a boot takes minutes): run it under `flock /tmp/zone-vm.lock`.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bootFilesBeside, POOL_DIR, writeVagrantBox } from '../../cli/node-image/box.ts';
import { bootCommandLine, buildNodeImage } from '../../cli/node-image/build.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NAME = 'zone-vtest';                   // unique to this file: domain zone-vtest-n1, network zone-vtest
const NET = '10.217.9';
const BOX = 'zone-vtest-box';
/** Under TCG on a loaded machine a node takes minutes to boot. */
const BOOT_MS = 15 * 60_000;

// Opt-in for now: its runs here lost VAGRANT_HOME's files during the first vagrant
// commands. Most likely this file's teardown ran early: tap printed the plan right after a
// top-level assertion (now gone) while the setup still awaited vagrant. Not yet run again
// with a VM; the same steps by hand pass (README, "Local testing with Vagrant").
if (process.env.ZONE_VAGRANT_UP === '1') await vagrantUp();
else t.plan(0, 'vagrant up of a node: opt-in with ZONE_VAGRANT_UP=1 (see the comment above)');

async function vagrantUp(): Promise<void> {
const dir = await mkdtemp(join(tmpdir(), 'zone-vagrant-up-'));
await chmod(dir, 0o711); // virtlogd writes the console log below it
const env = {
  ...process.env, VAGRANT_HOME: join(dir, 'vagrant.d'), VAGRANT_DOTFILE_PATH: join(dir, 'dot'), VAGRANT_CHECKPOINT_DISABLE: '1',
  ZONE_NODES: '1', ZONE_BOX: BOX, ZONE_VAGRANT_NAME: NAME, ZONE_VAGRANT_NET: NET,
};
const vagrant = (...args: string[]) => run('vagrant', args, { cwd: REPO, env, timeout: BOOT_MS, maxBuffer: 64 * 2 ** 20 });
const virsh = (...args: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...args]);
let made: string[] = [];

t.teardown(async () => {
  await vagrant('destroy', '-f').catch(() => undefined);
  await virsh('destroy', `${NAME}-n1`).catch(() => undefined);
  await virsh('undefine', `${NAME}-n1`).catch(() => undefined);
  await vagrant('box', 'remove', '--force', BOX).catch(() => undefined);
  // vagrant-libvirt leaves the box's volume in the pool; and the kernel copies this test made.
  const volumes = (await virsh('vol-list', 'default').catch(() => ({ stdout: '' }))).stdout;
  for (const line of volumes.split('\n')) {
    const volume = line.trim().split(/\s+/)[0];
    if (volume?.startsWith(`${BOX}_vagrant_box_image_`) || made.includes(volume ?? '')) await virsh('vol-delete', '--pool', 'default', volume!).catch(() => undefined);
  }
  for (const file of made) await rm(join(POOL_DIR, file), { force: true });
  await rm(dir, { recursive: true, force: true });
});

// The image build runs the image's node in a chroot, which must not get tap's loaders (they are not in the image).
delete process.env.NODE_OPTIONS;
const image = await buildNodeImage();
const boot = bootFilesBeside(image.disk);
if (!boot) throw new Error(`${image.disk}: no kernel and initrd beside it`);
const box = await writeVagrantBox({ disk: image.disk, boot: { ...boot!, cmdline: bootCommandLine() } }, join(dir, 'zone-node.box'));
const stem = `zone-node-${box.bootDigest!.slice(0, 24)}`;
made = [`${stem}.vmlinuz`, `${stem}.initrd`].filter((f) => !existsSync(join(POOL_DIR, f)));
// A first command sets VAGRANT_HOME up: vagrant 2.3.4's `box add` as the first one in a new home failed to make its tmp/ there.
await vagrant('box', 'list');
await vagrant('box', 'add', '--name', BOX, box.out);
await rm(box.out);

t.test('vagrant up brings the node up and returns once its API answers', async (t) => {
  const { stdout } = await vagrant('up', '--provider', 'libvirt');
  t.comment(stdout.replace(/^.*Progress: .*$/gm, '').trim());
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
}
