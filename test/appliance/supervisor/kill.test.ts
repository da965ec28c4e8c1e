// kill -9 at each step of an upgrade, with stand-in releases (test/helpers/stand-in-*.ts:
// tiny appliances that speak the supervisor's protocol) so that each step is reached
// exactly and a case takes seconds: the supervisor killed while the old appliance stops,
// once the store is copied (before and after the new release is spawned), during the
// gate, and once the state says the upgrade succeeded (before the old releases are
// pruned); the old appliance killed while it stops, the new one during the gate. After
// each: one appliance, the expected version serving, the store as it should be (the new
// release's migration undone on a rollback, kept on a success; the blueprints intact),
// no release folder, store copy or pending upgrade left behind. And: a store the
// supervisor cannot write once the gate passed (rolled back, not left with no appliance);
// the appliance killed between unpacking a release and asking for it (the release
// dropped); a stale pid file naming another node's appliance (left alone); a store copy
// that cannot be put back at first (tried again).
// upgrade.test.ts does the same with the real appliance and dockerd for the gate's steps.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { EMPTY_STATE, readReleaseState, releasesDir, writeReleaseState, type ReleaseState } from '../../../appliance/release/state.ts';
import { writeStandIn, type StandInBehaviour } from '../../helpers/stand-in-release.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';
import { APPLIANCE_NODE_FLAGS } from '../../../appliance/node-flags.ts';

// Each case has its own node (data dir, port): two at once.
t.jobs = 2;
const root = mkdtempSync(join(tmpdir(), 'zone-supervisor-kill-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const TREE = new URL('../../..', import.meta.url).pathname;
const GATE_MS = 10_000;
// Generous: a machine under load starts a supervisor and an appliance in seconds, not one.
const WAIT = { timeoutMs: 30_000, intervalMs: 10 };

interface StandInNode {
  dataDir: string;
  supervisor: ChildProcess;
  /** The supervisor's output (and its appliances'), for the frozen line and for a failure's diagnosis. */
  output(): string;
  /** Starts a supervisor (the last one killed), frozen at the first log line `freeze` matches. */
  startSupervisor(freeze?: RegExp): void;
  killSupervisor(): Promise<void>;
  /** The version GET /healthz answers with; null when nothing answers. */
  serving(): Promise<string | null>;
  appliancePids(): number[];
  state(): ReleaseState;
  /** The store's schema version and blueprints. */
  store(): { schema: number; blueprints: unknown[]; events: { to: string; reason: string }[] };
  /** What the releases folder holds besides the supervisor's own files. */
  releases(): string[];
  /** Unpacks `release` into releases/, as the appliance does with a release it receives. */
  receive(release: StandInBehaviour): void;
  requestUpgrade(version: string): Promise<void>;
}

/**
 * A node running `running`, its store at schema 1 with one blueprint, once it serves:
 * `running` is the tree the supervisor came with, or, with `previous`, a release an
 * upgrade from `previous` installed. `freeze`: where its supervisor stops dead.
 */
async function standInNode(t: Test, running: StandInBehaviour, options: { previous?: StandInBehaviour; freeze?: RegExp } = {}): Promise<StandInNode> {
  const home = mkdtempSync(join(root, 'node-'));
  const dataDir = join(home, 'node');
  mkdirSync(releasesDir(dataDir), { recursive: true });
  const factoryRef = writeStandIn(join(home, 'factory'), options.previous ? { version: '0.1.0', schema: 1 } : running);
  if (options.previous) {
    const [previous, current] = [options.previous, running].map((r) => writeStandIn(join(releasesDir(dataDir), r.version), r));
    writeReleaseState(dataDir, { ...EMPTY_STATE, current: current!, previous: previous! });
  }
  const db = new Database(join(dataDir, 'zone.db'));
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY, at TEXT, owner TEXT, blueprint TEXT, workload TEXT, from_state TEXT, to_state TEXT, reason TEXT);
    CREATE TABLE blueprints (name TEXT PRIMARY KEY, version INTEGER); INSERT INTO blueprints VALUES ('web', 3); PRAGMA user_version = 1;`);
  db.close();
  const [port] = await freeLoopbackPorts(1);
  let output = '';
  const appliancePids = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return cmd.includes('api/main.ts') && readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`ZONE_DATA_DIR=${dataDir}`) ? [Number(p)] : [];
    } catch {
      return [];
    }
  });
  const node: StandInNode = {
    dataDir, supervisor: null as unknown as ChildProcess, output: () => output, appliancePids,
    startSupervisor(freeze) {
      const child = spawn(process.execPath, ['--import', 'tsx', join(TREE, 'test/helpers/stand-in-supervisor.ts')], {
        env: { ...process.env, ZONE_DATA_DIR: dataDir, STAND_IN_PORT: String(port), STAND_IN_FACTORY: factoryRef.dir, STAND_IN_GATE_MS: String(GATE_MS), ...(freeze ? { STAND_IN_FREEZE: freeze.source } : {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
      child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
      node.supervisor = child;
    },
    async killSupervisor() {
      const s = node.supervisor;
      if (s.exitCode !== null || s.signalCode !== null) return;
      s.kill('SIGKILL');
      await new Promise((resolve) => s.once('exit', resolve));
    },
    async serving() {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
      return res?.ok ? (await res.json() as { version: string }).version : null;
    },
    state: () => readReleaseState(dataDir),
    store() {
      const db = new Database(join(dataDir, 'zone.db'), { readonly: true });
      try {
        return {
          schema: db.pragma('user_version', { simple: true }) as number,
          blueprints: db.prepare('SELECT name, version FROM blueprints').all(),
          events: db.prepare('SELECT to_state AS "to", reason FROM events ORDER BY seq').all() as { to: string; reason: string }[],
        };
      } finally {
        db.close();
      }
    },
    releases: () => readdirSync(releasesDir(dataDir)).filter((name) => !['state.json', 'appliance.pid'].includes(name)).sort(),
    receive: (release) => void writeStandIn(join(releasesDir(dataDir), release.version), release),
    async requestUpgrade(version) {
      const res = await fetch(`http://127.0.0.1:${port}/upgrade/${version}`, { method: 'POST' });
      if (res.status !== 202) throw new Error(`upgrade request: ${res.status}`);
    },
  };
  t.teardown(async () => {
    await node.killSupervisor();
    for (const pid of appliancePids()) process.kill(pid, 'SIGKILL');
  });
  node.startSupervisor(options.freeze);
  await waitFor(async () => await node.serving() === running.version, { ...WAIT, what: `${running.version} serving` });
  return node;
}

const v1: StandInBehaviour = { version: '1.0.0', schema: 1 };
const v2: StandInBehaviour = { version: '2.0.0', schema: 2 };
/** An old appliance that takes a while to stop: the supervisor stays at 'stopping' meanwhile. */
const v1SlowStop: StandInBehaviour = { ...v1, stopMs: 3000 };
/** A new release that never reports its health: the supervisor stays at 'starting' (the gate). */
const v2Unready: StandInBehaviour = { ...v2, ready: false };

/** Waits until the upgrade's phase is `phase` (and `also` holds), for a kill there. */
async function atPhase(n: StandInNode, phase: string, also: () => boolean = () => true): Promise<void> {
  await waitFor(() => n.state().pending?.phase === phase && also(), { ...WAIT, what: `the upgrade at ${phase}` });
}

/** Waits until the frozen supervisor says where it stopped. */
async function frozen(n: StandInNode, at: RegExp): Promise<void> {
  await waitFor(() => n.output().includes('frozen: '), { ...WAIT, what: `the supervisor frozen at ${at.source}` });
}

/**
 * After a kill: once `version` serves and no upgrade is pending, exactly one appliance
 * runs, the store is at `schema` with its blueprint, and the releases folder holds
 * `releases` only (no store copy, no release being removed).
 */
async function settled(t: Test, n: StandInNode, version: string, schema: number, releases: string[]): Promise<void> {
  try {
    await waitFor(async () => n.state().pending === null && await n.serving() === version, { ...WAIT, what: `${version} serving, no upgrade pending` });
    t.equal(n.appliancePids().length, 1, 'exactly one appliance');
    const store = n.store();
    t.equal(store.schema, schema, `the store at schema ${schema}`);
    t.same(store.blueprints, [{ name: 'web', version: 3 }], 'the blueprints intact');
    await waitFor(() => JSON.stringify(n.releases()) === JSON.stringify(releases), { ...WAIT, what: `releases: ${releases.join(', ')}` }).catch(() => undefined);
    t.same(n.releases(), releases, 'nothing else left in releases/');
  } catch (err) {
    t.comment(n.output());
    throw err;
  }
}

/** The case's ending: the successor rolled back the upgrade cut short at `phase`. */
async function rolledBackAt(t: Test, n: StandInNode, phase: string): Promise<void> {
  await n.killSupervisor();
  n.startSupervisor();
  await settled(t, n, '1.0.0', 1, []);
  t.match(n.state(), { current: { version: '1.0.0' }, lastUpgrade: { from: '1.0.0', to: '2.0.0', outcome: 'rolled-back', reason: new RegExp(`supervisor stopped during the upgrade to 2\\.0\\.0 \\(at ${phase}\\)`) } });
  t.match(n.store().events.at(-1), { to: 'rolled-back' });
}

t.test('supervisor killed while the old appliance stops: rolled back, the old release started again', async (t) => {
  const n = await standInNode(t, v1SlowStop);
  n.receive(v2);
  await n.requestUpgrade('2.0.0');
  const [old] = n.appliancePids();
  await atPhase(n, 'stopping', () => existsSync(`/proc/${old}`));
  await rolledBackAt(t, n, 'stopping');
});

t.test('supervisor killed once the store is copied, before the new release is spawned: rolled back', async (t) => {
  const freeze = /store copied/;
  const n = await standInNode(t, v1, { freeze });
  n.receive(v2);
  await n.requestUpgrade('2.0.0');
  await frozen(n, freeze);
  t.equal(n.state().pending?.phase, 'backed-up');
  await rolledBackAt(t, n, 'backed-up');
});

t.test('supervisor killed once the new release is spawned, before the phase says so: the new one stopped, its migration undone, rolled back', async (t) => {
  const freeze = /started appliance 2\.0\.0/;
  const n = await standInNode(t, v1, { freeze });
  n.receive(v2);
  await n.requestUpgrade('2.0.0');
  await frozen(n, freeze);
  // The new release migrated the store: the old one refuses it unless the copy is put back.
  await waitFor(() => n.store().schema === 2, { ...WAIT, what: 'the new release migrating the store' });
  t.equal(n.state().pending?.phase, 'backed-up');
  await rolledBackAt(t, n, 'backed-up');
});

t.test('supervisor killed during the gate: the new one stopped, its migration undone, rolled back', async (t) => {
  const n = await standInNode(t, v1);
  n.receive(v2Unready);
  await n.requestUpgrade('2.0.0');
  await atPhase(n, 'starting', () => n.store().schema === 2);
  await rolledBackAt(t, n, 'starting');
});

t.test('supervisor killed once the state says succeeded, before the old releases are pruned: the new release stays, the old ones go', async (t) => {
  const freeze = /succeeded/;
  // 1.0.0 was installed by an upgrade from 0.9.0: once 2.0.0 is in, 0.9.0 is neither running nor previous.
  const n = await standInNode(t, v1, { previous: { version: '0.9.0', schema: 1 }, freeze });
  n.receive(v2);
  // And a release a killed supervisor was removing.
  mkdirSync(join(releasesDir(n.dataDir), '.removing-0123456789ab', 'api'), { recursive: true });
  await n.requestUpgrade('2.0.0');
  await frozen(n, freeze);
  t.match(n.state(), { current: { version: '2.0.0' }, previous: { version: '1.0.0' }, pending: null, lastUpgrade: { outcome: 'succeeded' } });
  t.same(n.releases(), ['.removing-0123456789ab', '0.9.0', '1.0.0', '2.0.0', 'store-backup.db'], 'not pruned yet, the store copy not removed yet');
  await n.killSupervisor();
  n.startSupervisor();
  await settled(t, n, '2.0.0', 2, ['1.0.0', '2.0.0']);
  t.match(n.state(), { current: { version: '2.0.0' }, previous: { version: '1.0.0' }, lastUpgrade: { from: '1.0.0', to: '2.0.0', outcome: 'succeeded' } });
  t.match(n.store().events.at(-1), { to: 'upgraded' });
});

t.test('old appliance killed while it stops: the upgrade goes on and succeeds', async (t) => {
  const n = await standInNode(t, v1SlowStop);
  n.receive(v2);
  await n.requestUpgrade('2.0.0');
  const [old] = n.appliancePids();
  await atPhase(n, 'stopping', () => existsSync(`/proc/${old}`));
  process.kill(old!, 'SIGKILL');
  await settled(t, n, '2.0.0', 2, ['2.0.0']);
  t.match(n.state(), { current: { version: '2.0.0' }, previous: { version: '1.0.0' }, lastUpgrade: { outcome: 'succeeded' } });
});

t.test('new appliance killed during the gate: rolled back, its migration undone', async (t) => {
  const n = await standInNode(t, v1);
  n.receive(v2Unready);
  await n.requestUpgrade('2.0.0');
  await atPhase(n, 'starting', () => n.store().schema === 2);
  const [fresh] = n.appliancePids();
  process.kill(fresh!, 'SIGKILL');
  await settled(t, n, '1.0.0', 1, []);
  t.match(n.state(), { current: { version: '1.0.0' }, lastUpgrade: { outcome: 'rolled-back', reason: /the new appliance exited \(signal SIGKILL\)/ } });
});

t.test('a store the supervisor cannot write once the gate passed: rolled back with the store copy, never left without an appliance', async (t) => {
  const n = await standInNode(t, v1);
  // The new release keeps the store locked longer than the supervisor waits to record its success.
  n.receive({ ...v2, holdStoreMs: 20_000 });
  await n.requestUpgrade('2.0.0');
  await waitFor(() => n.state().lastUpgrade, { ...WAIT, what: 'the upgrade\'s outcome' });
  await settled(t, n, '1.0.0', 1, []);
  t.match(n.state(), { current: { version: '1.0.0' }, lastUpgrade: { outcome: 'rolled-back', reason: /the supervisor failed during the upgrade: database is locked/ } });
});

t.test('appliance killed once it unpacked a release, before it asked for it: started again, the release dropped', async (t) => {
  const n = await standInNode(t, v1);
  n.receive(v2);
  const [pid] = n.appliancePids();
  t.same(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => APPLIANCE_NODE_FLAGS.includes(arg)), APPLIANCE_NODE_FLAGS, 'the supervisor starts the appliance with the node flags');
  process.kill(pid!, 'SIGKILL');
  await waitFor(async () => n.appliancePids().some((p) => p !== pid) && await n.serving() === '1.0.0', { ...WAIT, what: 'the appliance started again' });
  await settled(t, n, '1.0.0', 1, []);
  t.match(n.state(), { current: null, pending: null, lastUpgrade: null });
});

t.test('an appliance pid file naming another node\'s appliance (its pid reused): that one is left alone', async (t) => {
  const [a, b] = await Promise.all([standInNode(t, v1), standInNode(t, v1)]);
  const [pidA] = a.appliancePids();
  const [pidB] = b.appliancePids();
  await b.killSupervisor();
  // Its appliance stops by itself once its supervisor is gone.
  await waitFor(() => !existsSync(`/proc/${pidB}`), { ...WAIT, what: 'the orphan stopping' });
  writeFileSync(join(releasesDir(b.dataDir), 'appliance.pid'), `${pidA}\n`);
  b.startSupervisor();
  await settled(t, b, '1.0.0', 1, []);
  t.same(a.appliancePids(), [pidA], 'the other node\'s appliance still runs');
  t.equal(await a.serving(), '1.0.0');
});

t.test('a rollback that cannot put the store copy back at first tries again until it can: the previous release serves on the store as it was', async (t) => {
  const n = await standInNode(t, v1);
  n.receive(v2Unready);
  await n.requestUpgrade('2.0.0');
  await atPhase(n, 'starting', () => n.store().schema === 2);
  // The copy out of reach (as on a full disk), then the new release fails.
  const backup = join(releasesDir(n.dataDir), 'store-backup.db');
  renameSync(backup, `${backup}.aside`);
  mkdirSync(backup);
  const [fresh] = n.appliancePids();
  process.kill(fresh!, 'SIGKILL');
  await waitFor(() => n.output().includes('could not put the store copy back'), { ...WAIT, what: 'the store copy failing to go back' });
  t.same(n.appliancePids(), [], 'nothing runs on the store the new release migrated');
  rmdirSync(backup);
  renameSync(`${backup}.aside`, backup);
  await settled(t, n, '1.0.0', 1, []);
  t.match(n.state(), { current: { version: '1.0.0' }, lastUpgrade: { outcome: 'rolled-back', reason: /the new appliance exited \(signal SIGKILL\)/ } });
});
