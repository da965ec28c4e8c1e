// Sealed values with the real dockerd: the workload reads its secret from a file on a
// tmpfs, owned by the image's user; the clear value is in no `docker inspect`, no
// container config file on disk, no node log, event, API reply or store file; a value
// bound elsewhere is never opened; a neighbour container finds none of them; the files
// go with the container.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Docker from 'dockerode';
import t from 'tap';
import { buildServer } from '../../../api/server.ts';
import { GIB } from '../../../appliance/admission.ts';
import { createAppliance } from '../../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { workloadId } from '../../../drivers/names.ts';
import { createLogger } from '../../../appliance/logger.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Blueprint, Workload } from '../../../blueprints/schema.ts';
import { openSealed, sealSecret } from '../../../blueprints/seal.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { WorkloadSpecError } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { DEFAULT_SECRETS_ROOT } from '../../../drivers/docker/secrets.ts';
import { LABELS } from '../../../drivers/docker/spec.ts';
import { waitFor } from '../../helpers/wait.ts';

const docker = new Docker();
const CLEAR = `clear-${createHash('sha256').update(String(process.pid)).digest('hex').slice(0, 24)}`;
const SHA = createHash('sha256').update(CLEAR).digest('hex');
const NOBODY_IMAGE = `zone/busybox-nobody-test${process.pid}`;

const dir = await mkdtemp(join(tmpdir(), 'zone-docker-secrets-'));
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
let log = '';
const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });
const appliance = await createAppliance({
  config, trustPolicy: policy, logger,
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
});
appliance.start();
const server = await buildServer(appliance, { logger });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
const node = appliance.identity;
const secretsOf = (id: string) => join(DEFAULT_SECRETS_ROOT, node.id, id);

// An image that runs as a named user (busybox's nobody, 65534): its files must be that user's.
const base = await docker.createContainer({ Image: 'zone/busybox', Cmd: ['true'] });
await base.commit({ repo: NOBODY_IMAGE, changes: 'USER nobody' });
await base.remove();

t.teardown(async () => {
  await server.close();
  await appliance.close();
  const ours = await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${node.id}`] } });
  await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  await docker.getImage(NOBODY_IMAGE).remove().catch(() => {});
  await rm(join(DEFAULT_SECRETS_ROOT, node.id), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** Prints what the workload sees of its secret: its hash (never the value), its file's mode and owner, whether the env holds it. */
const REPORT = [
  'echo "sha=$(sha256sum < "$TOKEN_FILE" | cut -d" " -f1)"',
  'echo "file=$(stat -c "%a %u:%g" "$TOKEN_FILE")"',
  'echo "dir=$(stat -c "%a %u:%g" /run/zone/secrets)"',
  'echo "env=$(env | grep -c "^TOKEN=")"',
  'echo "ro=$( (echo x > /run/zone/secrets/TOKEN) 2>/dev/null && echo writable || echo read-only)"',
  'exec sleep 3600',
].join('; ');

const workload = (name: string, image: string, token: string): Workload =>
  ({ name, kind: 'container', image, command: ['sh', '-c', REPORT], env: { TOKEN: token, PLAIN: 'plain' } }) as Workload;
const sealFor = (workloadName: string) => sealSecret(CLEAR, node.box.publicKey, { owner: operator.publicKey, node: node.id, blueprint: 'vault', field: `workloads/${workloadName}/env/TOKEN` });
const logsOf = async (name: string) => {
  let text = '';
  for await (const chunk of await appliance.logs('vault', name, { follow: false })) text += String(chunk);
  return text;
};

t.test('the workload reads its secret from a read-only file of its user; the clear value is nowhere else', async (t) => {
  const bp = signBlueprint({
    name: 'vault', version: 1, owner: operator.publicKey, node: node.id,
    workloads: [
      workload('root', 'zone/busybox', sealFor('root')),
      workload('nobody', NOBODY_IMAGE, sealFor('nobody')),
      // A hostile neighbour: looks for other workloads' secrets on the node.
      { name: 'peek', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'echo "shm=$(ls -A /dev/shm | wc -l) run=$(ls -A /run/zone 2>/dev/null | wc -l) mounts=$(grep -c zone-secrets /proc/mounts) found=$(find / -xdev -name TOKEN 2>/dev/null | wc -l)"; exec sleep 3600'] },
    ],
  } as Blueprint, operator.secretKey);
  const replies: string[] = [];
  const put = await fetch(`${url}/v1/blueprints/vault`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
  replies.push(await put.text());
  t.equal(put.status, 202);
  for (const [name, owner] of [['root', '0:0'], ['nobody', '65534:65534']] as const) {
    const seen = await waitFor(async () => /ro=/.test(await logsOf(name)) && logsOf(name), { timeoutMs: 30_000, what: `${name} reports its secret` });
    t.match(seen, `sha=${SHA}`, `${name}: reads the value`);
    t.match(seen, `file=400 ${owner}`, `${name}: 0400, owned by the user it runs as`);
    t.match(seen, `dir=500 ${owner}`);
    t.match(seen, 'env=0', `${name}: not in its env`);
    t.match(seen, 'ro=read-only', `${name}: cannot change it`);
  }

  const peek = await waitFor(async () => /found=/.test(await logsOf('peek')) && logsOf('peek'), { timeoutMs: 30_000, what: 'peek looks around' });
  t.match(peek, 'shm=0 run=0 mounts=0 found=0', 'a neighbour sees no secrets directory or file of the others');

  const id = workloadId(node.id, operator.publicKey, 'vault', 'root');
  const host = secretsOf(id);
  t.equal((await statfs(host)).type, 0x01021994, 'the files live on a tmpfs');
  t.equal((await stat(join(host, 'TOKEN'))).mode & 0o777, 0o400);

  const info = await docker.getContainer(id).inspect();
  t.ok(info.Config.Env.includes('TOKEN_FILE=/run/zone/secrets/TOKEN'));
  const configDir = join('/var/lib/docker/containers', info.Id);
  const configFiles = await Promise.all(['config.v2.json', 'hostconfig.json'].map((f) => readFile(join(configDir, f), 'utf8')));
  t.ok(configFiles[0]!.includes('TOKEN_FILE'), 'the config on disk was read');
  for (const path of ['/v1/node', '/v1/blueprints', '/v1/blueprints/vault', '/v1/events?follow=false']) {
    replies.push(await (await fetch(`${url}${path}`)).text());
  }
  const storeFiles = await Promise.all((await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile()).map((e) => readFile(join(e.parentPath, e.name), 'latin1')));
  const places: [string, string][] = [
    ['docker inspect', JSON.stringify(info)],
    ['config.v2.json and hostconfig.json', configFiles.join('\n')],
    ['the node log', log],
    ['events', JSON.stringify(appliance.events({}))],
    ['API replies', replies.join('\n')],
    ['the data directory', storeFiles.join('\n')],
  ];
  t.ok(log.length > 0 && replies.length === 5 && storeFiles.length > 0, 'there was something to scan');
  for (const [where, text] of places) t.notOk(text.includes(CLEAR), `the clear value is not in ${where}`);

  // Removal takes the files along.
  await appliance.submit(signBlueprint({ name: 'vault', version: 2, owner: operator.publicKey, node: node.id, delete: true } as Blueprint, operator.secretKey));
  await waitFor(() => appliance.getBlueprint('vault')?.workloads.length === 0, { timeoutMs: 30_000, what: 'vault removed' });
  t.notOk(existsSync(host), 'the secrets directory is gone with the container');
  t.notOk(existsSync(secretsOf(workloadId(node.id, operator.publicKey, 'vault', 'nobody'))));
});

t.test('a value bound elsewhere is never opened by the driver: no container, no file', async (t) => {
  // What a node that stored it before this check (or a bug upstream) would hand the driver.
  const ctx = { node: node.id, dataDir: dir, openSecret: (sealed: string, place: { owner: string; blueprint: string; field: string }) => openSealed(sealed, node.box.secretKey, { ...place, node: node.id }) };
  const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
  t.teardown(() => driver.close());
  const definition = normalizeWorkload(workload('thief', 'zone/busybox', sealFor('root')));
  const spec = { node: node.id, owner: operator.publicKey, blueprint: 'vault', workload: 'thief', id: workloadId(node.id, operator.publicKey, 'vault', 'thief'), specHash: specHash(definition), definition };
  const err = await driver.ensure(spec).then(() => null, (e: unknown) => e);
  t.type(err, WorkloadSpecError);
  t.match((err as Error).message, /env\.TOKEN: sealed value is bound to field workloads\/root\/env\/TOKEN, not workloads\/thief\/env\/TOKEN/);
  t.notMatch((err as Error).message, CLEAR);
  t.equal((await docker.getContainer(spec.id).inspect().catch(() => null))?.State.Running ?? false, false, 'it never ran');
  t.notOk(existsSync(join(secretsOf(spec.id), 'TOKEN')), 'no file was written');
  await driver.remove(spec.id);
  t.notOk(existsSync(secretsOf(spec.id)), 'remove cleans up what there was');
});
