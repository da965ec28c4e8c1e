// The supervisor: the node's entry point, kept small (it is replaced only by a full
// reinstall). It runs the current release's appliance as its child and restarts it
// when it dies; when the appliance has installed a release and asks for it, it stops
// the appliance (workloads keep running), copies the store, starts the new release and
// holds it to the health gate (gate.ts). A release that fails the gate is stopped, the
// store copy put back and the previous release started again: the node always ends on
// a working version. An upgrade cut short (this process killed) is rolled back when the
// supervisor starts again. Every step is an event in the store.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { restartDelayMs, type BackoffPolicy } from '../../lib/backoff.ts';
import { judgeGate, type ReadyReport } from './gate.ts';
import { backupStore, recordNodeEvent, restoreStore } from './store-copy.ts';
import { readReleaseState, releasesDir, storeBackupPath, writeReleaseState, type ReleaseRef, type ReleaseState } from '../release/state.ts';
import { APPLIANCE_NODE_FLAGS } from '../node-flags.ts';

export interface SupervisorOptions {
  dataDir: string;
  /** The tree this supervisor came with: what runs before any upgrade. */
  factory: ReleaseRef;
  /** The appliance's environment (ZONE_DATA_DIR is set to dataDir). */
  env: NodeJS.ProcessEnv;
  /** How long a new release has to pass the health gate. */
  gateMs: number;
  /** How long an appliance has to stop before it is killed. */
  stopMs: number;
  log: (line: string) => void;
  backoff?: BackoffPolicy;
}

/** A message from the appliance: its health report, or a release it installed. */
type ChildMessage = ReadyReport | { type: 'upgrade'; to: ReleaseRef };

const PID_FILE = 'appliance.pid';
/** The prefix of a failed release's folder while it is unlinked. */
const REMOVING = '.removing-';
const APPLIANCE_BACKOFF: BackoffPolicy = { firstMs: 500, maxMs: 30_000, stableMs: 60_000, crashloopAfter: 3 };

interface Running {
  ref: ReleaseRef;
  child: ChildProcess;
  exited: Promise<string>;
  exit: string | null;
  ready: ReadyReport | null;
  startedAt: number;
}

export class Supervisor {
  private running: Running | null = null;
  private upgrading = false;
  private stopping = false;
  private crashes = 0;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: SupervisorOptions) {}

  private state(): ReleaseState {
    return readReleaseState(this.o.dataDir);
  }

  private current(): ReleaseRef {
    return this.state().current ?? this.o.factory;
  }

  /**
   * Stops an appliance a killed supervisor left, undoes an upgrade cut short, removes the
   * store copy and the releases neither running nor previous (the one it was starting,
   * those a killed supervisor did not prune or finish removing), and starts the current
   * release.
   */
  async start(): Promise<void> {
    await this.stopOrphan();
    const state = this.state();
    if (state.pending) {
      const { from, to, phase, startedAt } = state.pending;
      const reason = `the supervisor stopped during the upgrade to ${to.version} (at ${phase}); rolled back to ${from.version}`;
      if (phase !== 'stopping' && existsSync(storeBackupPath(this.o.dataDir))) restoreStore(this.o.dataDir, storeBackupPath(this.o.dataDir));
      this.finish({ ...state, current: from, pending: null }, from.version, to.version, 'rolled-back', reason, Date.parse(startedAt));
    }
    // One a supervisor killed as it finished an upgrade left (a copy of the node's data, kept no longer than needed).
    rmSync(storeBackupPath(this.o.dataDir), { force: true });
    // Before the appliance starts: nothing it receives can be taken for a release to prune.
    this.prune();
    this.launch(this.current());
  }

  /** Stops the appliance (workloads keep running) and returns; an upgrade under way is rolled back at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.stopChild();
  }

  private launch(ref: ReleaseRef): Running {
    const loader = pathToFileURL(join(ref.dir, 'node_modules/tsx/dist/loader.mjs')).href;
    const child = spawn(process.execPath, [...APPLIANCE_NODE_FLAGS, '--import', loader, join(ref.dir, 'api/main.ts')], {
      env: { ...this.o.env, ZONE_DATA_DIR: this.o.dataDir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const run: Running = { ref, child, exit: null, ready: null, startedAt: Date.now(), exited: Promise.resolve('') };
    run.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      run.exit = signal ? `signal ${signal}` : `exit ${code}`;
      resolve(run.exit);
    }));
    if (child.pid) writeFileSync(join(releasesDir(this.o.dataDir), PID_FILE), `${child.pid}\n`);
    child.on('message', (m: ChildMessage) => this.heard(run, m));
    child.on('error', (err) => this.o.log(`appliance ${ref.version} could not start: ${err.message}`));
    void run.exited.then((how) => this.exited(run, how));
    this.running = run;
    this.o.log(`started appliance ${ref.version} (pid ${child.pid ?? '?'}) from ${ref.dir}`);
    return run;
  }

  private heard(run: Running, m: ChildMessage): void {
    if (m?.type === 'ready') run.ready = m;
    if (m?.type === 'upgrade' && run === this.running && !this.upgrading && !this.stopping) {
      void this.upgrade(m.to).catch((err: unknown) => this.o.log(`upgrade failed: ${(err as Error).stack ?? String(err)}`));
    }
  }

  /** An appliance that dies outside an upgrade is started again, with a backoff (what it was receiving dropped). */
  private exited(run: Running, how: string): void {
    if (run !== this.running || this.upgrading || this.stopping) return;
    this.running = null;
    const policy = this.o.backoff ?? APPLIANCE_BACKOFF;
    this.crashes = Date.now() - run.startedAt >= policy.stableMs ? 0 : this.crashes + 1;
    const delay = restartDelayMs(this.crashes, policy);
    this.o.log(`appliance ${run.ref.version} ${how}; starting it again in ${delay} ms`);
    this.restartTimer = setTimeout(() => {
      if (this.stopping || this.upgrading) return;
      // A release it had unpacked but not yet asked for goes: nothing runs that could be receiving one.
      this.prune();
      this.launch(this.current());
    }, delay);
  }

  private async stopChild(): Promise<void> {
    const run = this.running;
    if (!run || run.exit !== null) return;
    run.child.kill('SIGTERM');
    const killed = setTimeout(() => run.child.kill('SIGKILL'), this.o.stopMs);
    await run.exited;
    clearTimeout(killed);
  }

  /** The appliance a killed supervisor left behind (it stops by itself when its supervisor goes; this makes sure). */
  private async stopOrphan(): Promise<void> {
    const pidFile = join(releasesDir(this.o.dataDir), PID_FILE);
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8'));
      // Only ours: a reused pid is some other process, maybe the appliance of another node on this machine.
      const ours = readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('api/main.ts')
        && readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`ZONE_DATA_DIR=${this.o.dataDir}`);
      if (!ours) return;
    } catch {
      return;
    }
    const alive = () => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]?.startsWith('Z');
    process.kill(pid, 'SIGTERM');
    const until = Date.now() + this.o.stopMs;
    while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (alive()) process.kill(pid, 'SIGKILL');
    while (alive()) await new Promise((r) => setTimeout(r, 50));
    rmSync(pidFile, { force: true });
  }

  private async upgrade(to: ReleaseRef): Promise<void> {
    this.upgrading = true;
    const started = Date.now();
    const from = this.current();
    const dataDir = this.o.dataDir;
    const pending = (phase: 'stopping' | 'backed-up' | 'starting') => writeReleaseState(dataDir, { ...this.state(), pending: { from, to, phase, startedAt: new Date(started).toISOString() } });
    const steps: string[] = [];
    const step = (text: string) => {
      steps.push(text);
      this.o.log(`upgrade ${from.version} -> ${to.version}: ${text}`);
    };
    let backedUp = false;
    try {
      pending('stopping');
      recordNodeEvent(dataDir, 'upgrading', `upgrade from ${from.version} to ${to.version}: stopping ${from.version} (workloads keep running)`);
      await this.stopChild();
      if (this.stopping) return;
      step(`stopped ${from.version}`);
      backedUp = backupStore(dataDir, storeBackupPath(dataDir));
      pending('backed-up');
      step(backedUp ? 'store copied' : 'no store to copy');
      // Launched (its pid file written) before the phase says so: a supervisor killed in
      // between leaves a new appliance its successor finds and stops, never an unknown one.
      const run = this.launch(to);
      pending('starting');
      const verdict = await this.gate(run);
      // Stopped meanwhile: the upgrade stays pending, rolled back at the next start.
      if (this.stopping) return;
      if (verdict.kind === 'pass') {
        step(`${to.version} healthy: API answers, one full pass done, pseudokernel ${run.ready?.pseudokernel ?? '?'}, 0 workloads restarted`);
        // The event before the state: killed in between, the upgrade is rolled back and the
        // store copy (without the event) put back. After the state, nothing may fail it:
        // the store copy is gone, a rollback could not put it back.
        recordNodeEvent(dataDir, 'upgraded', `upgraded from ${from.version} to ${to.version} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${steps.join('; ')}`);
        this.finish({ ...this.state(), current: to, previous: from, pending: null }, from.version, to.version, 'succeeded', steps.join('; '), started);
        this.prune();
        return;
      }
      step(`gate failed: ${verdict.reason}`);
      await this.rollBack(from, to, backedUp, verdict.reason, started, steps);
    } catch (err) {
      // Whatever broke (a full disk under the store copy, ...), the node goes back to what ran.
      if (this.stopping) return;
      const reason = `the supervisor failed during the upgrade: ${(err as Error).message}`;
      step(reason);
      await this.rollBack(from, to, backedUp, reason, started, steps);
    } finally {
      this.upgrading = false;
    }
  }

  /**
   * Stops the new release, puts the store copy back and starts `from` again. A store copy
   * that cannot be put back (a full disk, ...) is tried again until it can: `from` never
   * runs on the store the new release may have migrated, and nothing is left undone.
   */
  private async rollBack(from: ReleaseRef, to: ReleaseRef, backedUp: boolean, reason: string, started: number, steps: string[]): Promise<void> {
    await this.stopChild();
    // First: the space its files free may be what putting the store copy back needs.
    if (to.dir !== from.dir) this.removeRelease(to);
    if (backedUp && !await this.untilDone('put the store copy back', () => restoreStore(this.o.dataDir, storeBackupPath(this.o.dataDir)))) return;
    steps.push(backedUp ? 'store restored' : 'no store to restore');
    this.finish({ ...this.state(), current: from, pending: null }, from.version, to.version, 'rolled-back', reason, started, steps);
    this.launch(from);
  }

  /** Runs `work` until it succeeds, with a backoff; false when the supervisor is stopped first (an upgrade then stays pending, undone at the next start). */
  private async untilDone(what: string, work: () => void): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        work();
        return true;
      } catch (err) {
        const delay = restartDelayMs(attempt, this.o.backoff ?? APPLIANCE_BACKOFF);
        this.o.log(`could not ${what} (${(err as Error).message}); trying again in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.stopping) return false;
      }
    }
  }

  /**
   * Removes a release that failed, once the previous one is started again: its folder is
   * renamed out of the way at once (the same version may be uploaded again), its thousands
   * of files unlinked in the background (that takes seconds).
   */
  private removeRelease(ref: ReleaseRef): void {
    const doomed = join(releasesDir(this.o.dataDir), `${REMOVING}${randomBytes(6).toString('hex')}`);
    try {
      renameSync(ref.dir, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log(`could not remove release ${ref.version} at ${ref.dir}: ${(err as Error).message}`);
      return;
    }
    this.unlinkInBackground(doomed);
  }

  /** Removes a folder already out of the way; its thousands of files take seconds, off the critical path. */
  private unlinkInBackground(path: string): void {
    void rm(path, { recursive: true, force: true }).catch((err: unknown) => this.o.log(`could not remove ${path}: ${(err as Error).message}`));
  }

  /** Waits for the gate's verdict on `run`. */
  private async gate(run: Running): Promise<{ kind: 'pass' } | { kind: 'fail'; reason: string }> {
    const deadline = Date.now() + this.o.gateMs;
    for (;;) {
      const apiAnswered = run.ready ? await answers(run.ready.url) : false;
      const verdict = judgeGate({ now: Date.now(), deadline, limitSeconds: this.o.gateMs / 1000, exited: run.exit, ready: run.ready, apiAnswered });
      if (verdict.kind !== 'wait') return verdict;
      await Promise.race([run.exited, new Promise((r) => setTimeout(r, 200))]);
    }
  }

  /** Writes the outcome; a rollback also becomes an event (after the store copy is back, so it stays). */
  private finish(state: ReleaseState, from: string, to: string, outcome: 'succeeded' | 'rolled-back', reason: string, started: number, steps: string[] = []): void {
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    writeReleaseState(this.o.dataDir, { ...state, lastUpgrade: { from, to, outcome, reason, at: new Date().toISOString(), seconds } });
    if (outcome === 'rolled-back') {
      this.o.log(`upgrade ${from} -> ${to} rolled back: ${reason}`);
      // The state above has it: a store that cannot take the event (busy, full) must not keep the previous release from starting.
      try {
        recordNodeEvent(this.o.dataDir, 'rolled-back', `upgrade from ${from} to ${to} rolled back after ${seconds} s: ${reason}${steps.length ? ` (${steps.join('; ')})` : ''}`);
      } catch (err) {
        this.o.log(`could not record the rollback as an event: ${(err as Error).message}`);
      }
    } else {
      this.o.log(`upgrade ${from} -> ${to} succeeded in ${seconds} s`);
    }
    rmSync(storeBackupPath(this.o.dataDir), { force: true });
  }

  /**
   * Keeps the running and the previous release; the others go (renamed out of the way at
   * once, unlinked in the background), as do removals a killed supervisor cut short.
   * Never throws: a release that cannot be removed is logged, the node runs on.
   */
  private prune(): void {
    const { current, previous } = this.state();
    const keep = new Set([current?.dir, previous?.dir]);
    const dir = releasesDir(this.o.dataDir);
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (!entry.isDirectory() || keep.has(path)) continue;
        // Folders being received (.incoming-) are the appliance's.
        if (entry.name.startsWith(REMOVING)) this.unlinkInBackground(path);
        else if (!entry.name.startsWith('.')) this.removeRelease({ version: entry.name, dir: path });
      }
    } catch (err) {
      this.o.log(`could not prune the releases in ${dir}: ${(err as Error).message}`);
    }
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
