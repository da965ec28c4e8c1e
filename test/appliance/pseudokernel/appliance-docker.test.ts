// The pseudokernel wired into an appliance with the real Docker driver and a real
// nats-server: the owner's process table follows the node's workloads (and shows their
// volumes), every container has the owner's /zone, and the blueprints' pipes run.
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { buffer, text } from 'node:stream/consumers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { buildVolumeProvider } from '../../../appliance/drivers.ts';
import type { VolumeProvider } from '../../../drivers/contract.ts';
import { workloadId } from '../../../drivers/names.ts';
import { isMounted } from '../../../appliance/pseudokernel/mount/mount.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const execFileAsync = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'zone-pk-docker-'));
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy: created, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
// The operator also signs for a second owner: the policy grants it any owner.
const policy = { ...created, signers: created.signers.map((s) => ({ ...s, owners: '*' as const })) };

let volumes: VolumeProvider | null = null;

async function start(): Promise<ZoneAppliance> {
  const started = await createAppliance({
    config, trustPolicy: policy, logger: pino({ level: 'silent' }),
    drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
    volumes: (ctx) => (volumes = buildVolumeProvider(ctx)),
    // Volumes' use in /zone/proc is measured again this often.
    usagePeriodMs: 500,
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
    pseudokernel: {},
  });
  started.start();
  return started;
}

let appliance = await start();
const nodeId = appliance.identity.id;
t.teardown(async () => {
  await appliance.close();
  await removeNodeContainers([nodeId]).catch(() => {});
  for (const v of await volumes!.list()) await volumes!.remove(v.id);
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: nodeId, ...bp } as Blueprint, operator.secretKey);
const procRows = async () => (await appliance.pseudokernel!.procTable(operator.publicKey)).list();

t.test('the owner\'s process table lists the node\'s workloads as they run; a tombstone removes their rows', async (t) => {
  t.equal(appliance.pseudokernel?.available, true, 'nats-server started');
  const started = Date.now();
  await appliance.submit(sign({
    name: 'proc', version: 1, workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }],
  }));
  const row = await waitFor(async () => (await procRows()).find((r) => r.workload === 'web' && r.state === 'running'), { timeoutMs: 60_000, what: 'web running in the process table' });
  t.comment(`running in the process table ${Date.now() - started} ms after the submit`);
  const status = appliance.getBlueprint('proc')!.workloads[0]!;
  t.same(row, { node: nodeId, blueprint: 'proc', workload: 'web', kind: 'container', state: 'running', restarts: 0, since: status.since });

  const deleted = Date.now();
  await appliance.submit(sign({ name: 'proc', version: 2, delete: true }));
  await waitFor(async () => (await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length === 0, { timeoutMs: 60_000, what: 'container removed' });
  t.comment(`container removed ${Date.now() - deleted} ms after the tombstone; events ${JSON.stringify(appliance.events({ blueprint: 'proc' }).map((e) => [e.at.slice(17), e.to, e.reason]))}`);
  await waitFor(async () => (await procRows()).length === 0, { timeoutMs: 30_000, what: 'the row removed' });
  t.comment(`row removed ${Date.now() - deleted} ms after the tombstone`);
  t.equal((await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length, 0, 'the container is gone too');
});

t.test('containers of one owner share /zone/fs byte-exact and see themselves in /zone/self; another owner sees none of it', async (t) => {
  const other = generateSigningKeyPair().publicKey;
  const expected = execFileSync('seq', ['1', '200000'], { maxBuffer: 16 * 2 ** 20 });
  const md5 = createHash('md5').update(expected).digest('hex');
  const started = Date.now();
  await appliance.submit(sign({
    name: 'files', version: 1, workloads: [
      { name: 'writer', kind: 'container', image: 'zone/busybox', command: ['sh', '-ec', 'cat /zone/self/name; seq 1 200000 > /zone/fs/hello.part; mv /zone/fs/hello.part /zone/fs/hello; echo written; exec sleep 3600'] },
      // Polls inside the container. A file is there from its creation on (empty until its
      // writer closes it), hence the writer's rename.
      { name: 'reader', kind: 'container', image: 'zone/busybox', command: ['sh', '-ec', 'until [ -f /zone/fs/hello ]; do sleep 0.1; done; md5sum /zone/fs/hello; exec sleep 3600'] },
    ],
  }));
  await appliance.submit(sign({
    owner: other, name: 'others', version: 1, workloads: [
      { name: 'peek', kind: 'container', image: 'zone/busybox', command: ['sh', '-ec', 'until [ -f /zone/self/name ]; do sleep 0.1; done; ls -a /zone/fs | wc -l; [ -e /zone/fs/hello ] && echo seen || echo absent; exec sleep 3600'] },
    ],
  }));
  const logsOf = async (blueprint: string, workload: string, owner = operator.publicKey) => text(await appliance.logs(blueprint, workload, { follow: false, owner }));
  const read = await waitFor(async () => (await logsOf('files', 'reader')).match(/^([0-9a-f]{32}) {2}\/zone\/fs\/hello$/m)?.[1], { timeoutMs: 60_000, what: 'the reader\'s md5sum of /zone/fs/hello' });
  t.comment(`read by the second container ${Date.now() - started} ms after the submit`);
  t.equal(read, md5, 'the second container reads what the first wrote, byte-exact');
  t.equal(await waitFor(async () => /written\n$/.test(await logsOf('files', 'writer')) && logsOf('files', 'writer'), { timeoutMs: 10_000, what: 'the writer\'s log' }),
    'writer\nwritten\n', '/zone/self/name is the workload name');
  t.ok((await buffer(await (await appliance.pseudokernel!.gridFs(operator.publicKey)).read('/hello'))).equals(expected), 'the owner\'s grid files hold it');
  const peek = await waitFor(async () => /(seen|absent)\n$/.test(await logsOf('others', 'peek', other)) && logsOf('others', 'peek', other), { timeoutMs: 60_000, what: 'the other owner\'s container to look' });
  t.equal(peek.replace(/ /g, ''), '2\nabsent\n', 'another owner\'s /zone/fs is empty (only . and ..)');

  const mountpoint = join(dir, 'zone', workloadId(nodeId, operator.publicKey, 'files', 'writer'));
  t.ok(await isMounted(mountpoint), 'the writer\'s /zone is mounted at DATA/zone/<workload id>');
  await appliance.submit(sign({ name: 'files', version: 2, delete: true }));
  await appliance.submit(sign({ owner: other, name: 'others', version: 2, delete: true }));
  await waitFor(() => appliance.pseudokernel!.mounted().size === 0, { timeoutMs: 30_000, what: 'the /zone mounts released' });
  await waitFor(async () => !(await isMounted(mountpoint)), { timeoutMs: 10_000, what: `${mountpoint} unmounted` });
  t.equal((await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length, 0, 'the containers are gone');
});

t.test('/zone/proc shows a workload\'s volumes (name, kind, size, used, target, ro/rw) to its owner\'s containers only', async (t) => {
  const other = generateSigningKeyPair().publicKey;
  await appliance.submit(sign({
    name: 'stateful', version: 1,
    volumes: [{ name: 'data', size: '16Mi' }, { name: 'ref', size: '16Mi' }],
    workloads: [{
      name: 'db', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'dd if=/dev/zero of=/data/blob bs=1M count=4 && sync; exec sleep 3600'],
      mounts: [{ volume: 'data', target: '/data' }, { volume: 'ref', target: '/ref', readOnly: true }],
    }],
  }));
  await appliance.submit(sign({ owner: other, name: 'others', version: 1, workloads: [{ name: 'peek', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] }] }));
  // Never execFileSync: /zone is served by this process, which must stay free to answer the reads.
  const inside = (blueprint: string, workload: string, command: string, owner = operator.publicKey) =>
    execFileAsync('docker', ['exec', workloadId(nodeId, owner, blueprint, workload), 'sh', '-c', command], { encoding: 'utf8', timeout: 20_000 }).then((r) => r.stdout, () => null);
  // The row is published when db starts, before dd has written: the use is measured again.
  const line = /^data filesystem 16777216 (\d+) \/data rw\nref filesystem 16777216 (\d+) \/ref ro\n$/;
  const shown = await waitFor(async () => {
    const m = (await inside('stateful', 'db', 'cat /zone/proc/stateful/db/volumes'))?.match(line);
    return m && Number(m[1]) >= 4 * 2 ** 20 ? m : null;
  }, { timeoutMs: 60_000, what: 'data\'s 4 MiB in /zone/proc/stateful/db/volumes inside db' });
  t.ok(Number(shown[2]) < 2 * 2 ** 20, `ref uses ${shown[2]} bytes: ext4's own tables only`);
  const listed = (await appliance.listVolumes(operator.publicKey)).find((v) => v.blueprint === 'stateful' && v.name === 'data');
  t.ok(Math.abs(Number(shown[1]) - (listed?.usedBytes ?? 0)) < 2 ** 20, 'the use shown is the one GET /v1/volumes gives');

  await waitFor(async () => (await inside('others', 'peek', 'cat /zone/self/name', other)) === 'peek\n', { timeoutMs: 60_000, what: 'the other owner\'s /zone' });
  t.equal(await inside('others', 'peek', 'ls /zone/proc', other), 'others\n', 'another owner sees only its own blueprints');
  t.equal(await inside('others', 'peek', 'cat /zone/proc/stateful/db/volumes', other), null, 'and cannot read the first owner\'s volumes');
  t.equal(await inside('others', 'peek', 'cat /zone/proc/others/peek/volumes', other), '', 'a workload without volumes has an empty file');

  await appliance.submit(sign({ name: 'stateful', version: 2, delete: true }));
  await appliance.submit(sign({ owner: other, name: 'others', version: 2, delete: true }));
  await waitFor(async () => (await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length === 0, { timeoutMs: 60_000, what: 'the containers removed' });
});

t.test('a blueprint piping seq 1 100000 into sort -n gives the sorted numbers', async (t) => {
  const expected = execFileSync('sh', ['-c', 'seq 1 100000 | sort -n'], { maxBuffer: 16 * 2 ** 20 }).toString();
  const started = Date.now();
  await appliance.submit(sign({
    name: 'sorting', version: 1,
    workloads: [
      // Largest first, so sort has something to do.
      { name: 'gen', kind: 'container', image: 'zone/busybox', command: ['seq', '100000', '-1', '1'], restart: 'never' },
      { name: 'sort', kind: 'container', image: 'zone/busybox', command: ['sort', '-n'], restart: 'never' },
    ],
    pipes: [{ from: 'gen.stdout', to: 'sort.stdin' }],
  }));
  const sortState = () => appliance.getBlueprint('sorting')?.workloads.find((w) => w.workload === 'sort');
  await waitFor(() => sortState()?.state === 'exited', { timeoutMs: 60_000, what: 'sort to exit' });
  t.comment(`sorted ${Date.now() - started} ms after the submit`);
  t.equal(sortState()?.lastExit, 0);
  // Followed (it ends, as sort exited): docker-modem demuxes a non-followed log of this
  // size recursively and overflows the stack.
  const output = await text(await appliance.logs('sorting', 'sort', { follow: true }));
  t.equal(output.length, expected.length, 'as many bytes');
  t.ok(output === expected, 'the sorted numbers, byte for byte');
  const stats = await appliance.pseudokernel!.pipeRunner!.stats();
  t.match(stats.find((s) => s.role === 'produce'), { bytesProduced: expected.length, error: null });

  await appliance.submit(sign({ name: 'sorting', version: 2, delete: true }));
  await waitFor(async () => (await appliance.pseudokernel!.pipeRunner!.stats()).length === 0, { timeoutMs: 30_000, what: 'the pipe ends stopped' });
  await waitFor(async () => (await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } })).length === 0, { timeoutMs: 30_000, what: 'the containers removed' });
});

t.test('after an appliance restart a container\'s next start has a live /zone again', async (t) => {
  await appliance.submit(sign({
    name: 'again', version: 1,
    workloads: [{ name: 'keeper', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'cat /zone/self/name; exec sleep 3600'] }],
  }));
  const logs = async () => text(await appliance.logs('again', 'keeper', { follow: false }));
  await waitFor(async () => (await logs()) === 'keeper\n', { timeoutMs: 60_000, what: 'keeper to read /zone/self/name' });
  await appliance.close();
  t.notOk(await isMounted(join(dir, 'zone')), 'close() unmounted DATA/zone and the mounts below it');
  const restarted = Date.now();
  appliance = await start();
  // Adopted as it runs (its /zone is dead meanwhile); killed, the engine starts it again, remounting.
  await appliance.reconciler.idle();
  await docker.getContainer(workloadId(nodeId, operator.publicKey, 'again', 'keeper')).kill();
  await waitFor(async () => (await logs()) === 'keeper\nkeeper\n', { timeoutMs: 30_000, what: 'the next incarnation to read /zone/self/name' });
  t.comment(`/zone live again ${Date.now() - restarted} ms after the appliance restart`);
  t.ok(await isMounted(join(dir, 'zone', workloadId(nodeId, operator.publicKey, 'again', 'keeper'))));
  await appliance.submit(sign({ name: 'again', version: 2, delete: true }));
  await waitFor(() => appliance.pseudokernel!.mounted().size === 0, { timeoutMs: 30_000, what: 'the /zone mount released' });
});
