// A node as `npm run supervise` runs it (the supervisor, its appliance, dockerd), on its
// own loopback ports and data dir, for upgrade tests and benchmarks; the caller stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSigningKey } from '../../blueprints/keys.ts';
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
  /** Starts a new supervisor (after the last one was killed). */
  restart(): void;
  node(): Promise<NodeInfo>;
  healthy(): Promise<boolean>;
  /** The appliances of this node: processes whose environment names its data dir. */
  appliancePids(): number[];
  /** Uploads a bundle as the operator (a read token of its key, unless `token` is false). */
  upload(bundle: string, token?: boolean): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Waits for the node to report the outcome of its upgrade to `version` begun after `since`, healthy on the other side. */
  outcome(version: string, since: number, timeoutMs?: number): Promise<NodeInfo>;
  /** SIGTERMs the supervisor (its appliance stops; workloads keep running) and kills what is left. */
  stop(): Promise<void>;
}

export async function startSupervisedNode(dataDir: string, gateSeconds: number): Promise<SupervisedNode> {
  const [apiPort, natsPort] = (await freeLoopbackPorts(2)) as [number, number];
  const url = `http://127.0.0.1:${apiPort}`;
  const launch = () => spawn(process.execPath, ['--import', 'tsx', join(TREE, 'appliance/supervisor/main.ts')], {
    env: { ...process.env, ZONE_DATA_DIR: dataDir, ZONE_LISTEN: `127.0.0.1:${apiPort}`, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}`, ZONE_UPGRADE_GATE_SECONDS: String(gateSeconds), ZONE_LOG_LEVEL: 'warn' },
    // $ZONE_TEST_NODE_LOGS: the node's output, to see why it does not start.
    stdio: ['ignore', process.env.ZONE_TEST_NODE_LOGS ? 'inherit' : 'ignore', process.env.ZONE_TEST_NODE_LOGS ? 'inherit' : 'ignore'],
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
  const self: SupervisedNode = {
    url, dataDir, nodeId: '', supervisor: launch(), node, healthy, appliancePids,
    restart: () => { self.supervisor = launch(); },
    async upload(bundle, token = true) {
      const operator = readSigningKey(join(dataDir, 'operator.key'));
      const authorization = makeReadToken(operator, { aud: self.nodeId, method: 'PUT', path: '/v1/node/release' });
      const res = await fetch(`${url}/v1/node/release`, {
        method: 'PUT', headers: { 'content-type': 'application/gzip', ...(token ? { authorization } : {}) }, body: readFileSync(bundle),
      });
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    },
    outcome: (version, since, timeoutMs = 120_000) => waitFor(async () => {
      const info = await node();
      const last = info.release?.lastUpgrade;
      return last && last.to === version && Date.parse(last.at) >= since && await healthy() ? info : null;
    }, { timeoutMs, what: `the outcome of the upgrade to ${version}`, intervalMs: 250 }),
    async stop() {
      const s = self.supervisor;
      if (s.exitCode === null && s.signalCode === null) {
        s.kill('SIGTERM');
        await new Promise((r) => s.once('exit', r));
      }
      for (const pid of appliancePids()) process.kill(pid, 'SIGKILL');
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
