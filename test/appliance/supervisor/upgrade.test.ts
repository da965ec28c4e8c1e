// The supervisor as a node runs it (npm run supervise), with dockerd and a few
// containers: an upgrade to a bundle of this tree with a bumped version adopts them
// (0 restarted, the same start times) and keeps the blueprints; bundles that exit at
// start, fail their migration or never become healthy are rolled back to the running
// version with the store as it was and the reason in events and zone node; kill -9 of
// the supervisor or of the new appliance mid-upgrade leaves one version, healthy.
// Lean on purpose: 3 containers, one node, the bundles built once.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import Docker from 'dockerode';
import Database from 'better-sqlite3';
import { readSigningKey } from '../../../blueprints/keys.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import { readReleaseState } from '../../../appliance/release/state.ts';
import type { ZoneEvent } from '../../../appliance/types.ts';
import { startSupervisedNode, type SupervisedNode } from '../../helpers/supervised-node.ts';
import { waitFor } from '../../helpers/wait.ts';
import { runZone } from '../../helpers/zone-cli.ts';
import { buildTreeRelease, variantBundle } from '../../helpers/release-bundles.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-upgrade-'));
const docker = new Docker();
let n: SupervisedNode | null = null;
t.teardown(async () => {
  await n?.stop();
  if (n) await removeNodeContainers([n.nodeId]);
  rmSync(dir, { recursive: true, force: true });
});
const events = async (): Promise<ZoneEvent[]> => ((await (await fetch(`${n!.url}/v1/events?follow=false`)).text()).match(/^data: .*$/gm) ?? []).map((l) => JSON.parse(l.slice(6)) as ZoneEvent);
const blueprints = async () => (await (await fetch(`${n!.url}/v1/blueprints`)).json() as { blueprints: unknown[] }).blueprints;

/** Start times of the node's containers, by name. */
async function startTimes(): Promise<Record<string, string>> {
  const found = await docker.listContainers({ all: true, filters: { label: [`zone.node=${n!.nodeId}`] } });
  const inspected = await Promise.all(found.map((c) => docker.getContainer(c.Id).inspect()));
  return Object.fromEntries(inspected.map((c) => [c.Name, `${c.State.Status} ${c.State.StartedAt}`]));
}

const bundles = {
  unsigned: join(dir, 'unsigned.tar.gz'), good: join(dir, 'good.tar.gz'), tampered: join(dir, 'tampered.tar.gz'),
  exits: join(dir, 'exits.tar.gz'), migration: join(dir, 'migration.tar.gz'), unhealthy: join(dir, 'unhealthy.tar.gz'),
  later: join(dir, 'later.tar.gz'), older: join(dir, 'older.tar.gz'),
};

t.before(async () => {
  n = await startSupervisedNode(join(dir, 'node'), 30);
  const operator = readSigningKey(join(n.dataDir, 'operator.key'));
  const base = await buildTreeRelease(bundles.unsigned, '0.2.0');
  const key = operator;
  await variantBundle(bundles.good, base, { version: '0.2.0', key });
  await variantBundle(bundles.tampered, base, { version: '0.2.0', key, tamper: { 'api/server.ts': (s) => s.replace('Changes come only', 'Changes come ONLY') } });
  await variantBundle(bundles.exits, base, { version: '0.3.0', key, edits: { 'api/main.ts': (s) => `process.exit(3);\n${s}` } });
  await variantBundle(bundles.migration, base, {
    version: '0.3.1', key, patch: { storeSchema: 2 },
    edits: { 'appliance/migrations.ts': (s) => s.replace(/\];\s*$/, '  `CREATE TABLE workload_extras (id TEXT); CREATE TABLE blueprints (broken INTEGER);`,\n];\n') },
  });
  await variantBundle(bundles.unhealthy, base, { version: '0.3.2', key, edits: { 'api/main.ts': (s) => s.replace('reportToSupervisor(() => appliance.startupHealth(urls[0]!), stop);', 'reportToSupervisor(() => new Promise(() => undefined), stop);') } });
  await variantBundle(bundles.later, base, { version: '0.4.0', key });
  await variantBundle(bundles.older, base, { version: '0.1.5', key });
  const workloads = ['a', 'b', 'c'].map((name) => ({ name, kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'sleep 100000'], resources: { cpus: 0.05, memory: '8Mi' } }));
  const bp = signBlueprint({ name: 'upgrade-web', version: 1, owner: operator.publicKey, node: n.nodeId, workloads } as unknown as Blueprint, operator.secretKey);
  const put = await fetch(`${n.url}/v1/blueprints/upgrade-web`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
  if (put.status !== 202) throw new Error(`submit: ${put.status} ${await put.text()}`);
  await waitFor(async () => Object.values(await startTimes()).filter((s) => s.startsWith('running')).length === 3, { timeoutMs: 60_000, what: 'three containers running' });
});

t.test('refused before anything is written: no token, unsigned, a file tampered with', async (t) => {
  const { upload, node, dataDir } = n!;
  const before = await startTimes();
  t.match(await upload(bundles.good, false), { status: 401, body: { error: 'SIGNATURE', message: /read token/ } });
  t.match(await upload(bundles.unsigned), { status: 401, body: { error: 'SIGNATURE', message: /release 0\.2\.0 is not signed/ } });
  t.match(await upload(bundles.tampered), { status: 401, body: { error: 'SIGNATURE', message: /api\/server\.ts does not match the digest in its signed manifest \(tampered\)/ } });
  t.same(readdirSync(join(dataDir, 'releases')).filter((n) => !['state.json', 'appliance.pid'].includes(n)), [], 'nothing unpacked is left');
  t.match(await node(), { version: '0.1.0', release: { running: '0.1.0', supervised: true, lastUpgrade: null } });
  t.same(await startTimes(), before);
});

for (const [name, bundle, version, reason] of [
  ['exits at start', bundles.exits, '0.3.0', /the new appliance exited \(exit 3\) before it was healthy/],
  ['fails its migration', bundles.migration, '0.3.1', /the new appliance exited \(exit 1\) before it was healthy/],
  ['never becomes healthy', bundles.unhealthy, '0.3.2', /not healthy within 30 s \(no full reconcile pass reported\)/],
] as const) {
  t.test(`a release that ${name} is rolled back: the previous version serves, the store as it was, 0 containers restarted, the reason told`, async (t) => {
    const { upload, outcome, dataDir, appliancePids, url } = n!;
    const before = await startTimes();
    const since = Date.now();
    t.match(await upload(bundle), { status: 202, body: { version, from: '0.1.0', signers: ['operator'] } });
    const info = await outcome(version, since);
    t.match(info, { version: '0.1.0', release: { running: '0.1.0', lastUpgrade: { from: '0.1.0', to: version, outcome: 'rolled-back', reason } } });
    t.same(await startTimes(), before, 'the containers were not restarted');
    t.match(await blueprints(), [{ name: 'upgrade-web', version: 1 }]);
    const db = new Database(join(dataDir, 'zone.db'), { readonly: true });
    t.equal(db.pragma('user_version', { simple: true }), 1, 'the store schema as it was');
    db.close();
    t.match((await events()).filter((e) => e.to === 'rolled-back').at(-1)?.reason, reason);
    t.notOk(existsSync(join(dataDir, 'releases', version)), 'the failed release is removed');
    t.equal(appliancePids().length, 1, 'one appliance runs');
    const shown = await runZone(['node', '--node', url], { cwd: dir });
    t.match(shown.stdout, new RegExp(`upgrade +0\\.1\\.0 -> ${version.replace(/\./g, '\\.')} ROLLED BACK`));
  });
}

t.test('an upgrade to the same tree with a bumped version adopts every container and keeps the blueprints', async (t) => {
  const { upload, node, dataDir, url } = n!;
  const before = await startTimes();
  const run = await runZone(['upgrade', bundles.good, '--node', url, '--key', join(dataDir, 'operator.key'), '--timeout', '120'], { cwd: dir, timeoutMs: 150_000 });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /took release 0\.2\.0 \(from 0\.1\.0, signed by operator\); switching/);
  t.match(run.stdout, /running 0\.2\.0 \(healthy after [\d.]+ s\)/);
  t.match(await node(), { version: '0.2.0', release: { running: '0.2.0', previous: '0.1.0', lastUpgrade: { outcome: 'succeeded', reason: /0 workloads restarted/ } } });
  t.same(await startTimes(), before, '0 containers restarted: the same start times');
  t.match(await blueprints(), [{ name: 'upgrade-web', version: 1, workloads: [{ state: 'running' }, { state: 'running' }, { state: 'running' }] }]);
  t.ok((await events()).some((e) => e.to === 'upgraded' && /upgraded from 0\.1\.0 to 0\.2\.0/.test(e.reason)));
  t.match(await upload(bundles.older), { status: 409, body: { error: 'STALE', message: /0\.1\.5 is older than the running 0\.2\.0/ } });
});

t.test('kill -9 of the new appliance during the gate: rolled back, one version, healthy', async (t) => {
  const { upload, outcome, dataDir, appliancePids } = n!;
  const before = await startTimes();
  const since = Date.now();
  t.equal((await upload(bundles.later)).status, 202);
  const pid = await waitFor(() => {
    const state = readReleaseState(dataDir);
    return state.pending?.phase === 'starting' ? appliancePids()[0] : null;
  }, { timeoutMs: 60_000, what: 'the new appliance starting', intervalMs: 20 });
  process.kill(pid, 'SIGKILL');
  const info = await outcome('0.4.0', since);
  t.match(info, { version: '0.2.0', release: { running: '0.2.0', lastUpgrade: { outcome: 'rolled-back', reason: /exited \(signal SIGKILL\)/ } } });
  t.equal(appliancePids().length, 1);
  t.same(await startTimes(), before);
});

t.test('kill -9 of the supervisor mid-upgrade: its successor rolls back; one version, healthy, nothing lost', async (t) => {
  const { upload, outcome, dataDir, appliancePids } = n!;
  const before = await startTimes();
  const since = Date.now();
  t.equal((await upload(bundles.later)).status, 202);
  await waitFor(() => readReleaseState(dataDir).pending?.phase === 'starting', { timeoutMs: 60_000, what: 'the upgrade starting the new release', intervalMs: 20 });
  const old = n!.supervisor;
  old.kill('SIGKILL');
  await new Promise((r) => old.once('exit', r));
  n!.restart();
  const info = await outcome('0.4.0', since);
  t.match(info, { version: '0.2.0', release: { running: '0.2.0', previous: '0.1.0', lastUpgrade: { outcome: 'rolled-back', reason: /supervisor stopped during the upgrade to 0\.4\.0 \(at starting\)/ } } });
  await waitFor(() => appliancePids().length === 1, { timeoutMs: 30_000, what: 'one appliance left' });
  t.same(await startTimes(), before, 'no container restarted');
  t.match(await blueprints(), [{ name: 'upgrade-web', version: 1 }]);
});

t.test('an appliance that dies outside an upgrade is started again by its supervisor, adopting its workloads', async (t) => {
  const { appliancePids, healthy, node } = n!;
  const before = await startTimes();
  const { version } = await node();
  const [pid] = appliancePids();
  process.kill(pid!, 'SIGKILL');
  await waitFor(async () => appliancePids().some((p) => p !== pid) && await healthy(), { timeoutMs: 60_000, what: 'the appliance started again' });
  t.match(await node(), { version, release: { running: version } });
  t.equal(appliancePids().length, 1);
  t.same(await startTimes(), before, 'no container restarted');
});
