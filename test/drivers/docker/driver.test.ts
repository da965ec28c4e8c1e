// DockerDriver against the real dockerd: what the conformance suite
// (test/drivers/conformance/docker.test.ts) does not cover.
import t from 'tap';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import Docker from 'dockerode';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { WorkloadSpecError, type DriverContext, type DriverEvent, type WorkloadSpec } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { DEFAULT_SECRETS_ROOT } from '../../../drivers/docker/secrets.ts';
import { LABELS } from '../../../drivers/docker/spec.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `dt${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 3).toString('base64')}`;
const SEALED = 'sealed:v2:c2VjcmV0';
const docker = new Docker();
const ctx: DriverContext = {
  node: NODE,
  dataDir: '/tmp',
  openSecret: (value) => {
    if (value !== SEALED) throw new Error('not sealed to this node');
    return 'open-sesame';
  },
};
const driver = new DockerDriver(ctx, { removeGraceMs: 2000 });
const events: DriverEvent[] = [];
const unwatch = driver.watch((e) => events.push(e));

async function removeByLabel(label: string): Promise<void> {
  const found = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
}

t.teardown(async () => {
  unwatch();
  await driver.close();
  await removeNodeContainers([NODE]);
  await removeByLabel(`zone-test=${NODE}`);
  await rm(join(DEFAULT_SECRETS_ROOT, NODE), { recursive: true, force: true });
});

function specOf(workload: string, fields: Partial<ContainerWorkload> = {}): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'], ...fields } as ContainerWorkload);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload, id: workloadId(NODE, OWNER, 'bp', workload), specHash: specHash(definition), definition };
}

function eventFor(id: string, type: DriverEvent['type'], extra: (e: DriverEvent) => boolean = () => true) {
  return waitFor(() => events.find((e) => 'id' in e && e.id === id && e.type === type && extra(e)), { timeoutMs: 20_000, what: `a ${type} event for ${id}` });
}

async function readUntil(stream: Readable, done: (text: string) => boolean, what: string): Promise<string> {
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return waitFor(() => (done(text) ? text : null), { timeoutMs: 20_000, what });
}

t.test('fingerprint reports the engine and API versions', async (t) => {
  const f = await driver.fingerprint();
  t.match(f.version, /^\d+\.\d+/);
  t.match(f.details.apiVersion, /^1\.\d+$/);
});

t.test('without dockerd, the fingerprint says where it was looked for', async (t) => {
  const absent = new DockerDriver(ctx, { socketPath: `/run/zone-no-dockerd-${process.pid}.sock` });
  t.match(await absent.fingerprint(), { available: false, reason: /dockerd not reachable at \/run\/zone-no-dockerd/ });
  await absent.close();
});

t.test('ensure creates and starts with the safe defaults; twice is idempotent', async (t) => {
  const spec = specOf('web', { env: { MODE: 'demo', TOKEN: SEALED }, resources: { cpus: 0.5, memory: '32Mi', pids: 64 } });
  const first = await driver.ensure(spec);
  t.match(first, { id: spec.id, state: 'running', node: NODE, owner: OWNER, blueprint: 'bp', workload: 'web', specHash: spec.specHash, kind: 'container' });
  const second = await driver.ensure(spec);
  t.equal(second.startedAt, first.startedAt, 'not restarted');
  const info = await docker.getContainer(spec.id).inspect();
  t.equal(info.HostConfig.Privileged, false);
  t.same(info.HostConfig.CapDrop, ['ALL']);
  t.same(info.HostConfig.SecurityOpt, ['no-new-privileges']);
  t.equal(info.HostConfig.RestartPolicy?.Name, 'no');
  t.equal(info.HostConfig.Memory, 32 * 2 ** 20);
  t.equal(info.HostConfig.NanoCpus, 5e8);
  t.equal(info.HostConfig.PidsLimit, 64);
  t.ok(info.Config.Env.includes('TOKEN_FILE=/run/zone/secrets/TOKEN'), 'the sealed value reaches the container as a file');
  t.notMatch(JSON.stringify(info), /open-sesame/);
  t.equal(info.Config.Labels[LABELS.specHash], spec.specHash);
});

t.test('ensure starts a stopped container again', async (t) => {
  const spec = specOf('restartable');
  await driver.ensure(spec);
  await driver.stop(spec.id, 2000);
  t.equal((await driver.inspect(spec.id))?.state, 'exited');
  await driver.stop(spec.id, 2000);
  t.equal((await driver.ensure(spec)).state, 'running');
});

t.test('list finds ours and only ours', async (t) => {
  const spec = specOf('listed');
  await driver.ensure(spec);
  const foreignLabels = { 'zone-test': NODE };
  await docker.createContainer({ name: `plain-${NODE}`, Image: 'zone/busybox', Cmd: ['true'], Labels: foreignLabels });
  await docker.createContainer({
    name: `forged-${NODE}`, Image: 'zone/busybox', Cmd: ['true'],
    Labels: { ...foreignLabels, [LABELS.node]: NODE, [LABELS.owner]: 'me', [LABELS.blueprint]: 'bp', [LABELS.workload]: 'x', [LABELS.specHash]: 'nope' },
  });
  const listed = await driver.list(NODE);
  t.ok(listed.some((o) => o.id === spec.id), 'ours is listed');
  t.notOk(listed.some((o) => o.id.includes('forged') || o.id.includes('plain')), 'others are not');
  t.ok(listed.every((o) => o.node === NODE));
  t.equal(await driver.inspect(`forged-${NODE}`), null, 'inspect of a container that is not ours says null');
});

t.test('kill -> exited event; docker rm -f -> removed event', async (t) => {
  const spec = specOf('victim');
  await driver.ensure(spec);
  await eventFor(spec.id, 'started');
  await docker.getContainer(spec.id).kill();
  const exited = await eventFor(spec.id, 'exited');
  t.match(exited, { exitCode: 137, oomKilled: false });
  t.match(await driver.inspect(spec.id), { state: 'exited', exitCode: 137 });
  await docker.getContainer(spec.id).remove({ force: true });
  await eventFor(spec.id, 'removed');
  t.equal(await driver.inspect(spec.id), null);
});

t.test('an OOM kill is reported as such', async (t) => {
  // Reads 64 MiB into memory under a 8 MiB limit without swap.
  const spec = specOf('hog', { command: ['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); sleep 3600'], resources: { memory: '8Mi' } });
  await driver.ensure(spec);
  const exited = await eventFor(spec.id, 'exited');
  t.match(exited, { exitCode: 137 });
  // dockerd (20.10, cgroup v1) may handle the kernel's OOM notice after the exit: then the
  // exited event says false and the container's state says true a moment later.
  const inspected = await waitFor(async () => {
    const observed = await driver.inspect(spec.id);
    return observed?.oomKilled ? observed : null;
  }, { timeoutMs: 10_000, what: 'the container\'s state to say OOM-killed' });
  t.match(inspected, { state: 'exited', oomKilled: true });
});

t.test('logs: tail and follow, stdout and stderr demultiplexed', async (t) => {
  // Each stage waits for a line on stdin, so the order of the log is certain.
  const spec = specOf('talker', { command: ['sh', '-c', 'echo err >&2; read go; for i in 1 2 3 4 5; do echo out$i; done; while read line; do echo "got $line"; done'] });
  await driver.ensure(spec);
  const io = await driver.attach(spec.id);
  await waitFor(async () => (await text(await driver.logs(spec.id, { follow: false }))) === 'err\n', { timeoutMs: 20_000, what: 'stderr logged' });
  io.stdin.write('go\n');
  await waitFor(async () => (await text(await driver.logs(spec.id, { follow: false }))).endsWith('out5\n'), { timeoutMs: 20_000, what: 'stdout logged' });
  t.equal(await text(await driver.logs(spec.id, { follow: false })), 'err\nout1\nout2\nout3\nout4\nout5\n');
  t.equal(await text(await driver.logs(spec.id, { follow: false, tail: 2 })), 'out4\nout5\n');
  const follow = await driver.logs(spec.id, { follow: true, tail: 0 });
  io.stdin.write('later\n');
  t.equal(await readUntil(follow, (s) => s.includes('got later\n'), 'a line logged after the follow began'), 'got later\n');
  follow.destroy();
  io.stdin.destroy();
});

t.test('attach: bytes written to stdin of cat come back byte-exact', async (t) => {
  const spec = specOf('echo', { command: ['cat'] });
  await driver.ensure(spec);
  const io = await driver.attach(spec.id);
  const sent = randomBytes(256 * 1024);
  const chunks: Buffer[] = [];
  let received = 0;
  io.stdout.on('data', (c: Buffer) => {
    chunks.push(c);
    received += c.length;
  });
  io.stdin.write(sent);
  await waitFor(() => received >= sent.length, { timeoutMs: 20_000, what: 'the bytes echoed back' });
  t.ok(Buffer.concat(chunks).equals(sent), 'byte-exact');
  io.stdin.destroy();
});

t.test('a failing health command makes it unhealthy', async (t) => {
  const spec = specOf('sick', { health: { command: ['false'], interval: '500ms', timeout: '1s', retries: 1 } });
  await driver.ensure(spec);
  await eventFor(spec.id, 'health', (e) => e.type === 'health' && e.health === 'unhealthy');
  t.equal((await driver.inspect(spec.id))?.health, 'unhealthy');
});

t.test('images: missing without a registry is a spec error; a failed pull says so', async (t) => {
  const missing = specOf('noimage', { image: `zone/absent-${NODE}` });
  const err = await driver.ensure(missing).catch((e: unknown) => e);
  t.type(err, WorkloadSpecError);
  t.match(err, { field: 'image', message: /is not on this node and the node config lists no registries/ });
  const withRegistry = new DockerDriver({ ...ctx, registries: [{ host: '127.0.0.1:1', namespace: '', credentials: () => null }] });
  t.match(await withRegistry.ensure(missing).catch((e: unknown) => e), { field: 'image', message: /image zone\/absent-\S+ is not on this node and no registry gave it: 127\.0\.0\.1:1: \S/ });
  await withRegistry.close();
});

t.test('a spec dockerd refuses names the field', async (t) => {
  const caps = await driver.ensure(specOf('badcap', { capabilities: ['NO_SUCH_CAP'] })).catch((e: unknown) => e);
  t.match(caps, { name: 'WorkloadSpecError', field: 'capabilities', message: /unknown capability/ });
  const memory = await driver.ensure(specOf('tiny', { resources: { memory: '1Mi' } })).catch((e: unknown) => e);
  t.match(memory, { name: 'WorkloadSpecError', field: 'resources.memory' });
});

t.test('a program that is not in the image exits 127 (the init reports it)', async (t) => {
  const spec = specOf('nocmd', { command: ['no-such-program'] });
  await driver.ensure(spec);
  t.match(await eventFor(spec.id, 'exited'), { exitCode: 127 });
});
