// Upgrade benchmark, baseline in the same run: a supervised node (npm run supervise)
// with N containers running (default 100, as issue 21 asks), then
//  (a)  baseline: the appliance killed (SIGTERM) and started again by its supervisor,
//       same version: the API's unavailable window, the floor of any switch
//  (b)  an upgrade to this tree with a bumped version: upload (+ verify + unpack),
//       time from `zone upgrade` to the new version healthy, the API's unavailable window
//  (c)  a rollback: a release that exits at start, until the previous version is healthy again
// Containers restarted by (b) and (c) are counted from docker's start times (must be 0).
// "Until healthy": from the upload's first byte to the supervisor's record of the outcome
// with the API answering (GET /v1/node is read after: its first answer after a start
// waits for the drivers' probes).
// Run: node --import tsx bench/upgrade.ts [N]   (or $ZONE_BENCH_CONTAINERS=N)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { readReleaseState } from '../appliance/release/state.ts';
import { removeNodeContainers } from '../cli/cluster/grid.ts';
import { buildTreeRelease, variantBundle } from '../test/helpers/release-bundles.ts';
import { startSupervisedNode, type SupervisedNode } from '../test/helpers/supervised-node.ts';
import { waitFor } from '../test/helpers/wait.ts';

const N = Number(process.argv[2] ?? process.env.ZONE_BENCH_CONTAINERS ?? 100);
if (!Number.isInteger(N) || N < 1 || N > 1000) throw new Error(`containers (argument or $ZONE_BENCH_CONTAINERS): a whole number 1 to 1000, not ${process.argv[2] ?? process.env.ZONE_BENCH_CONTAINERS}`);
const dir = mkdtempSync(join(tmpdir(), 'zone-bench-upgrade-'));
const docker = new Docker();
let node: SupervisedNode | null = null;

/** Polls /healthz every 50 ms until stopped; the longest run of failed polls, in ms. */
function watchAvailability(url: string): { stop(): Promise<number> } {
  let running = true;
  let longest = 0;
  const loop = (async () => {
    let downSince: number | null = null;
    while (running) {
      const ok = (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok === true;
      const now = Date.now();
      if (!ok && downSince === null) downSince = now;
      if (ok && downSince !== null) {
        longest = Math.max(longest, now - downSince);
        downSince = null;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { async stop() { running = false; await loop; return longest; } };
}

async function startTimes(nodeId: string): Promise<Map<string, string>> {
  const found = await docker.listContainers({ all: true, filters: { label: [`zone.node=${nodeId}`] } });
  const inspected = await Promise.all(found.map((c) => docker.getContainer(c.Id).inspect()));
  return new Map(inspected.map((c) => [c.Name, c.State.StartedAt]));
}
const restarted = (a: Map<string, string>, b: Map<string, string>) => [...a].filter(([name, at]) => b.get(name) !== at).length;

/** Waits for the supervisor to record the outcome of the upgrade to `version` begun at `since` and the API to answer; the time that took. */
async function untilOutcome(n: SupervisedNode, version: string, since: number): Promise<number> {
  await waitFor(async () => {
    const last = readReleaseState(n.dataDir).lastUpgrade;
    return last?.to === version && Date.parse(last.at) >= since && await n.healthy();
  }, { timeoutMs: 600_000, what: `the outcome of the upgrade to ${version}`, intervalMs: 50 });
  return Date.now() - since;
}
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

try {
  const n = node = await startSupervisedNode(join(dir, 'node'), 120);
  const operator = readSigningKey(join(n.dataDir, 'operator.key'));
  const workloads = Array.from({ length: N }, (_, i) => ({ name: `w${i}`, kind: 'container', image: 'zone/busybox', command: ['sleep', '100000'], resources: { cpus: 0.01, memory: '8Mi' } }));
  const bp = signBlueprint({ name: 'bench-upgrade', version: 1, owner: operator.publicKey, node: n.nodeId, workloads } as unknown as Blueprint, operator.secretKey);
  const put = await fetch(`${n.url}/v1/blueprints/bench-upgrade`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
  if (put.status !== 202) throw new Error(`submit: ${put.status} ${await put.text()}`);
  await waitFor(async () => [...(await startTimes(n.nodeId)).values()].length === N && (await n.node()).capacity !== undefined
    && ((await (await fetch(`${n.url}/v1/blueprints/bench-upgrade`)).json()) as { workloads: { state: string }[] }).workloads.every((w) => w.state === 'running'), { timeoutMs: 900_000, what: `${N} containers running`, intervalMs: 1000 });

  const builtAt = Date.now();
  const base = await buildTreeRelease(join(dir, 'base.tar.gz'), '0.2.0');
  const buildMs = Date.now() - builtAt;
  await variantBundle(join(dir, 'good.tar.gz'), base, { version: '0.2.0', key: operator });
  await variantBundle(join(dir, 'bad.tar.gz'), base, { version: '0.3.0', key: operator, edits: { 'api/main.ts': (text) => `process.exit(3);\n${text}` } });

  // (a) the same version restarted by its supervisor
  const [pid] = n.appliancePids();
  let watch = watchAvailability(n.url);
  const restartAt = Date.now();
  process.kill(pid!, 'SIGTERM');
  await waitFor(async () => n.appliancePids().some((p) => p !== pid) && await n.healthy(), { timeoutMs: 120_000, what: 'the appliance back', intervalMs: 50 });
  const restartMs = Date.now() - restartAt;
  const restartWindow = await watch.stop();

  // (b) upgrade
  let before = await startTimes(n.nodeId);
  watch = watchAvailability(n.url);
  const upAt = Date.now();
  const accepted = await n.upload(join(dir, 'good.tar.gz'));
  const uploadMs = Date.now() - upAt;
  if (accepted.status !== 202) throw new Error(`upload: ${accepted.status} ${JSON.stringify(accepted.body)}`);
  const upgradeMs = await untilOutcome(n, '0.2.0', upAt);
  const upgraded = readReleaseState(n.dataDir).lastUpgrade;
  if (upgraded?.outcome !== 'succeeded') throw new Error(`the upgrade: ${JSON.stringify(upgraded)}`);
  const upgradeWindow = await watch.stop();
  const upgradeRestarted = restarted(before, await startTimes(n.nodeId));

  // (c) rollback
  before = await startTimes(n.nodeId);
  watch = watchAvailability(n.url);
  const backAt = Date.now();
  await n.upload(join(dir, 'bad.tar.gz'));
  const rollbackMs = await untilOutcome(n, '0.3.0', backAt);
  const rollbackWindow = await watch.stop();
  const rollbackRestarted = restarted(before, await startTimes(n.nodeId));
  const info = await n.node();
  if (info.release?.lastUpgrade?.outcome !== 'rolled-back' || info.release.running !== '0.2.0') throw new Error(`the rollback: ${JSON.stringify(info.release)}`);

  process.stdout.write([
    `upgrade benchmark, ${N} containers; bundle: ${base.manifest.files.length} files, built in ${s(buildMs)}, uploaded + verified + unpacked in ${s(uploadMs)}`,
    '',
    '| operation | until healthy | API unavailable | vs plain restart | containers restarted |',
    '|---|---:|---:|---:|---:|',
    `| (a) plain restart by the supervisor (baseline) | ${s(restartMs)} | ${s(restartWindow)} | 1.0x | - |`,
    `| (b) upgrade 0.1.0 -> 0.2.0 | ${s(upgradeMs)} | ${s(upgradeWindow)} | ${(upgradeWindow / restartWindow).toFixed(1)}x | ${upgradeRestarted} |`,
    `| (c) rollback of 0.3.0 (exits at start) | ${s(rollbackMs)} | ${s(rollbackWindow)} | ${(rollbackWindow / restartWindow).toFixed(1)}x | ${rollbackRestarted} |`,
    '',
    `rollback reason: ${info.release?.lastUpgrade?.reason}`,
    '',
  ].join('\n'));
} finally {
  await node?.stop();
  if (node) await removeNodeContainers([node.nodeId]);
  rmSync(dir, { recursive: true, force: true });
}
