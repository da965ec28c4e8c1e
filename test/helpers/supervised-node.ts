// A node as `npm run supervise` runs it (the supervisor, its appliance, dockerd), on its
// own loopback ports and data dir, for upgrade tests and benchmarks; the caller stops it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { readSigningKey } from '../../blueprints/keys.ts';
import { readReleaseState } from '../../appliance/release/state.ts';
import type { NodeInfo } from '../../appliance/types.ts';
import { makeReadToken } from '../../lib/tokens.ts';
import { freeLoopbackPorts } from './ports.ts';
import { TREE } from './release-bundles.ts';
import { waitFor } from './wait.ts';

export interface SupervisedNode {
  url: string;
  dataDir: string;
  nodeId: string;
  supervisor: ChildProcess;
  /** Starts a new supervisor (after the last one was killed), with another gate length if given. */
  restart(gateSeconds?: number): void;
  node(): Promise<NodeInfo>;
  healthy(): Promise<boolean>;
  /** The appliances of this node: processes whose environment names its data dir. */
  appliancePids(): number[];
  /** Uploads a bundle as the operator (a read token of its key, unless `token` is false). */
  upload(bundle: string, token?: boolean): Promise<{ status: number; body: Record<string, unknown> }>;
  /**
   * Sends the first `bytes` of a bundle as the operator and holds the upload open there
   * (an appliance killed while it receives); `settled` once the connection ends, however.
   */
  uploadPart(bundle: string, bytes: number): { settled: Promise<unknown> };
  /**
   * Waits for the supervisor to record the outcome of the upgrade to `version` begun after
   * `since` and for the API to answer on the other side; then what GET /v1/node shows.
   */
  outcome(version: string, since: number, timeoutMs?: number): Promise<NodeInfo>;
  /** SIGTERMs the supervisor (its appliance stops; workloads keep running) and kills what is left. */
  stop(): Promise<void>;
}

/** Processes whose command line names `dir` (a nats-server's config in it, ...). */
function processesNaming(dir: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).flatMap((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').some((arg) => arg.startsWith(`${dir}/`)) ? [Number(p)] : [];
    } catch {
      return [];
    }
  });
}

export async function startSupervisedNode(dataDir: string, gateSeconds: number): Promise<SupervisedNode> {
  const [apiPort, natsPort] = (await freeLoopbackPorts(2)) as [number, number];
  const url = `http://127.0.0.1:${apiPort}`;
  // $ZONE_TEST_SUPERVISOR_LOG: a file the supervisor's and its appliances' output is appended to, to see where an upgrade test spends its time, or why a node does not start.
  const log = process.env.ZONE_TEST_SUPERVISOR_LOG;
  const launch = (gate: number) => spawn(process.execPath, ['--import', 'tsx', join(TREE, 'appliance/supervisor/main.ts')], {
    env: { ...process.env, ZONE_DATA_DIR: dataDir, ZONE_LISTEN: `127.0.0.1:${apiPort}`, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}`, ZONE_UPGRADE_GATE_SECONDS: String(gate), ZONE_LOG_LEVEL: log ? 'info' : 'warn' },
    stdio: log ? ['ignore', openSync(log, 'a'), openSync(log, 'a')] : 'ignore',
  });
  const healthy = async () => (await fetch(`${url}/healthz`).catch(() => null))?.ok === true;
  const node = async () => (await fetch(`${url}/v1/node`)).json() as Promise<NodeInfo>;
  const appliancePids = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      return cmd.includes('api/main.ts') && env.includes(`ZONE_DATA_DIR=${dataDir}`) ? [Number(p)] : [];
    } catch {
      return [];
    }
  });
  const uploadToken = () => makeReadToken(readSigningKey(join(dataDir, 'operator.key')), { aud: self.nodeId, method: 'PUT', path: '/v1/node/release' });
  const self: SupervisedNode = {
    url, dataDir, nodeId: '', supervisor: launch(gateSeconds), node, healthy, appliancePids,
    restart: (gate = gateSeconds) => { self.supervisor = launch(gate); },
    async upload(bundle, token = true) {
      const res = await fetch(`${url}/v1/node/release`, {
        method: 'PUT', headers: { 'content-type': 'application/gzip', ...(token ? { authorization: uploadToken() } : {}) }, body: readFileSync(bundle),
      });
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    },
    uploadPart(bundle, bytes) {
      const req = request(`${url}/v1/node/release`, { method: 'PUT', headers: { 'content-type': 'application/gzip', authorization: uploadToken() } });
      const settled = new Promise((resolve) => {
        req.once('response', resolve).once('error', resolve);
      });
      req.write(readFileSync(bundle).subarray(0, bytes));
      return { settled };
    },
    async outcome(version, since, timeoutMs = 120_000) {
      // The supervisor's record, read from the data dir: GET /v1/node answers its first call
      // after a start only once the drivers' probes are done (seconds), and is asked once.
      await waitFor(async () => {
        const last = readReleaseState(dataDir).lastUpgrade;
        return last?.to === version && Date.parse(last.at) >= since && await healthy();
      }, { timeoutMs, what: `the outcome of the upgrade to ${version}`, intervalMs: 100 });
      return node();
    },
    async stop() {
      const s = self.supervisor;
      if (s.exitCode === null && s.signalCode === null) {
        s.kill('SIGTERM');
        await new Promise((r) => s.once('exit', r));
      }
      for (const pid of appliancePids()) process.kill(pid, 'SIGKILL');
      // An appliance whose stop ran out of time (under load, with 100 containers) leaves its
      // nats-server and its mounts under the data dir behind.
      for (const pid of processesNaming(dataDir)) process.kill(pid, 'SIGKILL');
      const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '');
      for (const m of mounts.filter((m) => m.startsWith(`${dataDir}/`)).sort((a, b) => b.length - a.length)) execFileSync('umount', ['-l', m]);
    },
  };
  // A node that never answers is stopped all the same: the caller has nothing to stop.
  await waitFor(healthy, { timeoutMs: 60_000, what: 'the first appliance to answer' }).catch(async (err: unknown) => {
    await self.stop();
    throw err;
  });
  self.nodeId = (await (await fetch(`${url}/healthz`)).json() as { node: string }).node;
  return self;
}
