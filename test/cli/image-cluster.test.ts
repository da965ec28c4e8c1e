// Images through the grid on a 3-node `zone cluster`: an image built on the host (and
// gone from dockerd once saved) is pushed to node 1 with `zone image push`; a blueprint
// pinning its digest runs on node 3, which fetched it from the grid; a tampered archive
// and a digest nobody pushed are refused, and nothing of theirs runs. A VM disk (qcow2)
// pushed to node 1 boots on node 2, from the copy node 2 fetched into its VM image store.
import t from 'tap';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { workloadId } from '../../drivers/names.ts';
import type { ClusterState } from '../../cli/cluster/grid.ts';
import { sh, tearDownCluster, zone } from '../helpers/cluster.ts';
import { GRID_AUDIENCE, makeReadToken } from '../../lib/tokens.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { NodeClient } from '../../cli/client.ts';
import { buildImageArchive, removeImage } from '../helpers/image-archive.ts';
import { buildBootDisk } from '../helpers/boot-sector.ts';
import { waitFor } from '../helpers/wait.ts';
import { holdExclusive } from '../helpers/exclusive.ts';

const failing = (...args: string[]) => zone(...args).then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }));

const NAME = 'itest';                        // unique to this file: namespaces zcl-itest-*
const SUBNET = '10.214.8.0/24';              // unique to this file too: clusters of files that run at once must not overlap
// Another run of this file (another checkout on this machine) would want the same name and subnet: it waits.
await holdExclusive(`cluster-${NAME}`);
// Short: a VM's console socket lives in its node's data folder, and unix socket paths end at 107 bytes.
const base = await mkdtemp(join(tmpdir(), 'zone-icl-'));
// qemu (its own user) walks to the VM files in the nodes' data folders.
await chmod(base, 0o711);
const dir = join(base, 'cluster');
let state: ClusterState | null = null;
const built = await buildImageArchive(base, `zone-test/grid-${process.pid}:1`, `made on the host ${process.pid}\n`);
// Kept in dockerd: pushed by its name.
const local = await buildImageArchive(base, `zone-test/grid-local-${process.pid}:1`, 'saved on the way\n', { keep: true });
const MARKER = `a disk from the grid ${process.pid}`;
const disk = await buildBootDisk(join(base, 'boot.qcow2'), MARKER, 'qcow2');
const domains: string[] = [];

t.teardown(async () => {
  await tearDownCluster(NAME, dir, state);
  // After the appliances stopped: a running one would make its VM again.
  for (const domain of domains) {
    await sh('virsh', '-c', 'qemu:///system', 'destroy', domain).catch(() => undefined);
    await sh('virsh', '-c', 'qemu:///system', 'undefine', domain).catch(() => undefined);
  }
  await removeImage(built.digest);
  await removeImage(local.digest);
  await rm(base, { recursive: true, force: true });
});

const { stdout: up } = await zone('cluster', 'up', '3', '--name', NAME, '--subnet', SUBNET, '--dir', dir);
state = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterState;
t.comment(up.trim());
const nodes = state.nodes;
const key = state.operatorKey;
const owner = (JSON.parse(await readFile(key, 'utf8')) as { publicKey: string }).publicKey;
const readAuthed = async (url: string) => fetch(url, { headers: { authorization: makeReadToken(readSigningKey(key), { aud: GRID_AUDIENCE, method: 'GET', path: new URL(url).pathname }) } });

/** Applies a one-workload blueprint to node `i`, following it for `timeout` seconds. */
async function apply(i: number, name: string, image: string, timeout = '120') {
  const file = join(base, `${name}.yaml`);
  await writeFile(file, stringify({ name, version: 1, owner, node: nodes[i]!.id, workloads: [{ name: 'app', kind: 'container', image, command: ['sleep', '600'] }] }));
  return failing('apply', file, '--node', nodes[i]!.api, '--key', key, '--timeout', timeout);
}

t.test('an image pushed to node 1 runs on node 3, which fetched it from the grid', async (t) => {
  await t.rejects(sh('docker', 'image', 'inspect', built.digest), 'dockerd does not have the image: only its archive does');
  const pushed = await zone('image', 'push', built.path, '--node', nodes[0]!.api, '--key', key);
  const reference = pushed.stdout.trim();
  t.equal(reference, `${built.tag}@${built.digest}`, 'push prints the reference to pin');

  const listed = await zone('image', 'ls', '--node', nodes[1]!.api, '--key', key, '--json');
  t.match(JSON.parse(listed.stdout), [{ digest: built.digest, name: built.tag }], 'node 2 lists it: the store is the grid\'s');

  t.same(await apply(2, 'pinned', reference), { code: 0, stderr: '' }, 'the blueprint pinning it runs on node 3');
  const container = workloadId(nodes[2]!.id!, owner, 'pinned', 'app');
  t.equal(await sh('docker', 'exec', container, 'cat', '/zone-extra.txt'), `made on the host ${process.pid}\n`, 'the extra file is there');
  t.equal((await sh('docker', 'inspect', '-f', '{{.Image}}', container)).trim(), built.digest, 'the container runs the pinned image');
});

t.test('a tampered archive is refused at the push; a digest nobody pushed is refused on the workload; nothing runs', async (t) => {
  const bytes = await readFile(built.path);
  bytes[Math.floor(bytes.length / 2)]! ^= 1;
  const tampered = join(base, 'tampered.tar');
  await writeFile(tampered, bytes);
  const push = await failing('image', 'push', tampered, '--node', nodes[0]!.api, '--key', key);
  t.equal(push.code, 1);
  t.match(push.stderr, /refused \(400 INVALID\): \/body: refused, nothing stored: image archive: layer 0 .* has sha256:/);

  const wrong = `${built.tag}@sha256:${'0'.repeat(64)}`;
  const applied = await apply(2, 'wrong', wrong, '60');
  t.equal(applied.code, 1, 'apply says it does not run');
  const status = await (await readAuthed(`${nodes[2]!.api}/v1/blueprints/wrong`)).json() as { workloads: { state: string; lastError: string | null }[] };
  t.match(status.workloads, [{ state: 'failed', lastError: /is not in the owner's grid image store/ }], 'the workload says why');
  await t.rejects(sh('docker', 'inspect', workloadId(nodes[2]!.id!, owner, 'wrong', 'app')), 'no container');
  const images = JSON.parse((await zone('image', 'ls', '--node', nodes[2]!.api, '--key', key, '--json')).stdout) as unknown[];
  t.equal(images.length, 1, 'the store still holds the one good image');
});

t.test('an image dockerd has is pushed by its name; an upload a broken run left is resumed with --resume', async (t) => {
  const byName = await zone('image', 'push', local.tag, '--node', nodes[1]!.api, '--key', key);
  t.equal(byName.stdout.trim(), `${local.tag}@${local.digest}`, 'saved from dockerd and pushed');

  // Half of the archive sent, then the run stopped: the upload waits on node 2.
  const bytes = await readFile(built.path);
  const client = new NodeClient(nodes[1]!.api, key);
  const operator = readSigningKey(key);
  const upload = await client.imageUpload(operator, bytes.length);
  await client.imagePart(operator, upload.id, 0, bytes.subarray(0, bytes.length >> 1));
  const resumed = await zone('image', 'push', built.path, '--resume', upload.id, '--node', nodes[1]!.api, '--key', key);
  t.equal(resumed.stdout.trim(), `${built.tag}@${built.digest}`);
  t.match(resumed.stderr, `the grid had ${built.digest} already`, 'one stored object: the grid had it from node 1');
  const images = JSON.parse((await zone('image', 'ls', '--node', nodes[2]!.api, '--key', key, '--json')).stdout) as { digest: string }[];
  t.same(images.map((i) => i.digest).sort(), [built.digest, local.digest].sort());
});

t.test('a VM disk pushed to node 1 boots on node 2, which fetched it from the grid', async (t) => {
  const pushed = await zone('image', 'push', disk.path, '--node', nodes[0]!.api, '--key', key);
  const reference = pushed.stdout.trim();
  t.equal(reference, `boot.qcow2@${disk.digest}`, 'pinned by the sha256 of the file');
  const listed = JSON.parse((await zone('image', 'ls', '--node', nodes[1]!.api, '--key', key, '--json')).stdout) as { digest: string; kind: string }[];
  t.match(listed.find((i) => i.digest === disk.digest), { kind: 'disk' });

  const file = join(base, 'vm.yaml');
  await writeFile(file, stringify({ name: 'vm', version: 1, owner, node: nodes[1]!.id, workloads: [{ name: 'boot', kind: 'vm', image: reference, resources: { memory: '64Mi' } }] }));
  domains.push(workloadId(nodes[1]!.id!, owner, 'vm', 'boot'));
  const applied = await failing('apply', file, '--node', nodes[1]!.api, '--key', key, '--timeout', '120');
  const status = await (await readAuthed(`${nodes[1]!.api}/v1/blueprints/vm`)).json() as { workloads: unknown[] };
  t.match(status.workloads, [{ state: 'running', lastError: null }], 'the VM runs on node 2');
  t.same(applied, { code: 0, stderr: '' }, 'apply says so');
  const url = `${nodes[1]!.api}/v1/blueprints/vm/workloads/boot/logs`;
  const console = await waitFor(async () => {
    const text = await (await readAuthed(url)).text();
    return text.includes(MARKER) ? text : null;
  }, { timeoutMs: 60_000, what: 'the disk\'s boot sector to print on the VM console' });
  t.match(console, MARKER, 'the pushed disk booted');
});
