// The Vagrant side of a node as a machine: the top-level Vagrantfile passes `vagrant
// validate` (with the box's own Vagrantfile merged under it); `zone image box` writes a box vagrant adds (metadata.json, Vagrantfile, box.img,
// and the kernel and initrd when the image boots them), the same box from the same inputs;
// `zone image config-disk` writes a stand-alone node's config disk that keeps its identity.
// Booting the box (`vagrant up`) is test/cli/vagrant-up.test.ts. Needs vagrant and
// vagrant-libvirt (scripts/setup-host installs them).
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildBootDisk } from '../helpers/boot-sector.ts';
import { runZone } from '../helpers/zone-cli.ts';
import { bootFilesBeside, boxVagrantfile, POOL_DIR, writeVagrantBox } from '../../cli/node-image/box.ts';
import { bootCommandLine } from '../../cli/node-image/build.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'zone-vagrant-test-'));
// A VAGRANT_HOME of the test's own: boxes added here touch nothing of the user's.
const env = { ...process.env, VAGRANT_HOME: join(dir, 'vagrant.d'), VAGRANT_CHECKPOINT_DISABLE: '1' };
t.teardown(() => rm(dir, { recursive: true, force: true }));
const vagrant = (args: string[], cwd = REPO, extra: Record<string, string> = {}) => run('vagrant', args, { cwd, env: { ...env, ...extra }, timeout: 120_000 });
const zone = (...args: string[]) => runZone(args, { cwd: dir });
const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
const tarList = async (path: string) => (await run('tar', ['-tf', path])).stdout.trim().split('\n');
const tarRead = async (path: string, member: string) => (await run('tar', ['-xOf', path, member])).stdout;

t.test('the Vagrantfile refuses a bad ZONE_NODES, ZONE_VAGRANT_NAME or ZONE_VAGRANT_NET, naming it', async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ ZONE_NODES: '0' }, 'ZONE_NODES must be a number of nodes from 1 to 32, not "0"'],
    [{ ZONE_VAGRANT_NAME: 'x"; system("id")' }, 'ZONE_VAGRANT_NAME must be 1-20 of a-z, 0-9 and -'],
    [{ ZONE_VAGRANT_NET: '10.300.1' }, 'ZONE_VAGRANT_NET must be the first three numbers of a /24'],
  ];
  for (const [extra, message] of cases) {
    const bad = await vagrant(['validate'], REPO, extra).then(() => null, (err: { stderr: string }) => err);
    t.ok(bad, `${JSON.stringify(extra)} is refused`);
    t.match(bad?.stderr ?? '', message);
  }
});

t.test('a disk that boots itself makes a box of metadata.json, Vagrantfile and box.img that vagrant adds and removes', async (t) => {
  const disk = await buildBootDisk(join(dir, 'own.qcow2'), 'a box that boots itself', 'qcow2');
  const box = join(dir, 'own.box');
  const made = await zone('image', 'box', '--image', disk.path, '--out', box);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /booting its own disk/);
  t.same(await tarList(box), ['metadata.json', 'Vagrantfile', 'box.img']);
  t.same(JSON.parse(await tarRead(box, 'metadata.json')), { provider: 'libvirt', format: 'qcow2', virtual_size: 1 });
  t.equal(createHash('sha256').update((await run('tar', ['-xOf', box, 'box.img'], { encoding: 'buffer', maxBuffer: 16 * 2 ** 20 })).stdout).digest('hex'),
    disk.digest.slice('sha256:'.length), 'box.img is the disk, byte for byte');
  t.notMatch(await tarRead(box, 'Vagrantfile'), /kernel/);

  const added = await vagrant(['box', 'add', '--name', 'zone-test', box]);
  t.match(added.stdout, /Successfully added box 'zone-test' \(v0\) for 'libvirt'/);
  const unpacked = join(env.VAGRANT_HOME, 'boxes', 'zone-test', '0', 'libvirt');
  t.same((await readdir(unpacked)).sort(), ['Vagrantfile', 'box.img', 'metadata.json']);
  await vagrant(['box', 'remove', '--force', 'zone-test']);
  await t.rejects(stat(unpacked), 'removed');
});

t.test('an image with a kernel and initrd beside it makes a box that carries and boots them, the same box from the same inputs', async (t) => {
  const stem = join(dir, 'node');
  await buildBootDisk(`${stem}.qcow2`, 'unused', 'qcow2');
  await writeFile(`${stem}.vmlinuz`, 'a kernel');
  await writeFile(`${stem}.initrd`, 'an initrd');
  const first = await zone('image', 'box', '--image', `${stem}.qcow2`, '--out', join(dir, 'a.box'));
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, `booting ${stem}.vmlinuz and ${stem}.initrd`);
  const boot = bootFilesBeside(`${stem}.qcow2`);
  t.same(boot, { kernel: `${stem}.vmlinuz`, initrd: `${stem}.initrd` });
  await writeVagrantBox({ disk: `${stem}.qcow2`, boot: { ...boot!, cmdline: bootCommandLine() } }, join(dir, 'b.box'));
  t.equal(await sha256(join(dir, 'a.box')), await sha256(join(dir, 'b.box')), 'reproducible: fixed times and owners');
  t.same(await tarList(join(dir, 'a.box')), ['metadata.json', 'Vagrantfile', 'box.img', 'vmlinuz', 'initrd']);
  t.equal(await tarRead(join(dir, 'a.box'), 'vmlinuz'), 'a kernel');
  const digest = createHash('sha256').update('a kernel').update('an initrd').digest('hex').slice(0, 24);
  const vagrantfile = await tarRead(join(dir, 'a.box'), 'Vagrantfile');
  t.match(vagrantfile, `libvirt.cmd_line = "${bootCommandLine()}"`);
  t.match(vagrantfile, `stem = "${POOL_DIR}/zone-node-${digest}"`);

  // Added, the box's Vagrantfile is merged under the top-level one: validate reads both.
  t.match((await vagrant(['box', 'add', '--name', 'zone-test-kernel', join(dir, 'a.box')])).stdout, /Successfully added box/);
  const unpacked = join(env.VAGRANT_HOME, 'boxes', 'zone-test-kernel', '0', 'libvirt');
  t.equal(await readFile(join(unpacked, 'initrd'), 'utf8'), 'an initrd');
  const { stdout } = await vagrant(['validate'], REPO, { ZONE_NODES: '3', ZONE_BOX: 'zone-test-kernel' });
  t.match(stdout, /Vagrantfile validated successfully/);
  await vagrant(['box', 'remove', '--force', 'zone-test-kernel']);
});

t.test('the box Vagrantfile quotes the command line as a Ruby string', async (t) => {
  const cmdline = 'root=/dev/vda x="a#{b}"\\ #$x';
  const text = boxVagrantfile({ cmdline, digest: 'f'.repeat(64) });
  const literal = /libvirt\.cmd_line = (.*)$/m.exec(text)?.[1] ?? '';
  t.equal((await run('ruby', ['-e', `print(${literal})`])).stdout, cmdline);
});

t.test('zone image box refuses what is not a qcow2, naming the file', async (t) => {
  const raw = await buildBootDisk(join(dir, 'raw.img'), 'raw', 'raw');
  const refused = await zone('image', 'box', '--image', raw.path, '--out', join(dir, 'raw.box'));
  t.equal(refused.code, 1);
  t.match(refused.stderr, `${raw.path}: a raw disk; a vagrant-libvirt box holds a qcow2`);
  const missing = await zone('image', 'box', '--image', join(dir, 'nothing.qcow2'), '--out', join(dir, 'x.box'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nothing\.qcow2: qemu-img cannot read it/);
  await t.rejects(stat(join(dir, 'raw.box')), 'nothing written');
});

t.test('zone image config-disk writes the node\'s address, API, trust policy and keys; the node keeps its id', async (t) => {
  const mtype = async (disk: string, path: string) => (await run('mtype', ['-i', disk, `::${path}`], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } })).stdout;
  const args = (out: string) => ['image', 'config-disk', '--out', out, '--address', '10.217.0.11/24', '--gateway', '10.217.0.1', '--hostname', 'zone-n1',
    '--operator-key', join(dir, 'operator.key'), '--identity', join(dir, 'n1')];
  const first = await zone(...args(join(dir, 'cfg1.img')));
  t.equal(first.code, 0, first.stderr);
  const id = /node ([a-z0-9]+), API http:\/\/10\.217\.0\.11:7700/.exec(first.stdout)?.[1];
  t.ok(id, first.stdout);
  const disk = join(dir, 'cfg1.img');
  t.equal((await stat(disk)).mode & 0o777, 0o600, 'the disk holds secret keys');
  t.equal(await mtype(disk, 'network.conf'), 'address=10.217.0.11/24\ngateway=10.217.0.1\nhostname=zone-n1\n');
  t.same(JSON.parse(await mtype(disk, 'data/config.json')), { listen: '10.217.0.11:7700', trustPolicy: 'trust-policy.json' });
  const operator = JSON.parse(await readFile(join(dir, 'operator.key'), 'utf8')) as { publicKey: string };
  t.same(JSON.parse(await mtype(disk, 'data/trust-policy.json')), { signers: [{ key: operator.publicKey, weight: 1, label: 'operator', owners: '*' }], threshold: 1 });
  t.equal(await mtype(disk, 'data/node.key'), await readFile(join(dir, 'n1', 'node.key'), 'utf8'));

  const again = await zone(...args(join(dir, 'cfg2.img')));
  t.match(again.stdout, `node ${id},`, 'the same identity folder gives the same node');
  const bad = await zone('image', 'config-disk', '--out', join(dir, 'bad.img'), '--address', '10.217.0.11', '--operator-key', join(dir, 'operator.key'), '--identity', join(dir, 'n9'));
  t.equal(bad.code, 1);
  t.match(bad.stderr, /network\.address: "10\.217\.0\.11" is not an IPv4 address with a prefix length/);
});
