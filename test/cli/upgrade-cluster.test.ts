// A rollout over a 3-node cluster of supervised nodes (npm run supervise; their
// nats-servers clustered over mutual-TLS routes on loopback, one trust policy): `zone
// upgrade BUNDLE --canary 1 --then all` uploads the bundle once, to the canary, which
// stores it in the grid's release store; the other nodes take it from there. A canary
// that fails (its appliance exits at start, rolled back) stops the rollout: the other
// two are never asked and stay on the old version. Lean: no workloads, one cluster. The
// nodes after the canary go one at a time (--batch 1), as the README advises for three
// nodes: with two of three switching at once the grid's JetStream has no quorum, and on a
// loaded machine a new appliance's nats-server did not get JetStream's answer within its
// start's 20 s (pseudokernel down: rolled back).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { removeWorkloadFirewall } from '../../appliance/firewall/firewall.ts';
import type { ZoneEvent } from '../../appliance/types.ts';
import { loopbackGrid } from '../helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';
import { treeRelease, variantBundle } from '../helpers/release-bundles.ts';
import { startSupervisedNode, type SupervisedNode } from '../helpers/supervised-node.ts';
import { runZone } from '../helpers/zone-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-rollout-'));
const nodes: SupervisedNode[] = [];

const operator = generateSigningKeyPair();
const key = join(dir, 'operator.key');
writeSigningKey(key, operator);
const policy = { signers: [{ key: operator.publicKey, weight: 1, label: 'operator' }], threshold: 1 };
const grid = await loopbackGrid(dir);
const routePorts = await freeLoopbackPorts(3);
const names = ['n1', 'n2', 'n3'];
for (const [i, name] of names.entries()) {
  const dataDir = join(dir, name);
  mkdirSync(dataDir, { mode: 0o711 });
  writeSigningKey(join(dataDir, 'operator.key'), operator);
  writeFileSync(join(dataDir, 'trust-policy.json'), JSON.stringify(policy), { mode: 0o600 });
  const { tls } = await grid.routeFiles(name);
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({
    nats: {
      cluster: {
        name: 'zone-rollout', listen: `127.0.0.1:${routePorts[i]}`, routes: routePorts.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`),
        routeSecret: grid.routeSecretFile, tls: { ca: tls!.caFile, cert: tls!.certFile, key: tls!.keyFile },
      },
    },
  }), { mode: 0o600 });
}
const bundles = { good: join(dir, 'good.tar.gz'), exits: join(dir, 'exits.tar.gz') };
const stopAll = async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  for (const n of nodes) await removeWorkloadFirewall(n.nodeId).catch(() => undefined);
};
t.teardown(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});
// Together: each node's nats-server waits for its peers before the API answers. Every
// node is stopped even when another part of the setup fails.
const setup = await Promise.allSettled([
  ...names.map((name) => startSupervisedNode(join(dir, name), 60).then((n) => { nodes.push(n); })),
  (async () => {
    const base = await treeRelease('0.2.0');
    await variantBundle(bundles.good, base, { version: '0.2.0', key: operator });
    await variantBundle(bundles.exits, base, { version: '0.3.0', key: operator, edits: { 'api/main.ts': (s) => `process.exit(3);\n${s}` } });
  })(),
]);
const failed = setup.find((r) => r.status === 'rejected');
if (failed) {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
  throw failed.reason;
}
nodes.sort((a, b) => names.indexOf(a.dataDir.slice(dir.length + 1)) - names.indexOf(b.dataDir.slice(dir.length + 1)));
const urls = nodes.map((n) => n.url);
const rollout = (bundle: string) => runZone(['upgrade', bundle, ...urls.flatMap((u) => ['--node', u]), '--canary', '1', '--then', 'all', '--batch', '1', '--key', key, '--timeout', '120'], { cwd: dir, timeoutMs: 400_000 });
const events = async (n: SupervisedNode): Promise<ZoneEvent[]> => ((await (await fetch(`${n.url}/v1/events?follow=false`)).text()).match(/^data: .*$/gm) ?? []).map((l) => JSON.parse(l.slice(6)) as ZoneEvent);

t.test('a canary that fails stops the rollout: the other two are never asked and stay on the old version', async (t) => {
  const run = await rollout(bundles.exits);
  t.comment(run.stdout + run.stderr);
  t.equal(run.code, 1, 'refused');
  const [a, b, c] = urls;
  t.match(run.stdout, new RegExp(`^${a}: took release 0\\.3\\.0 \\(from 0\\.1\\.0, signed by operator\\); switching \\(uploaded; in the grid's release store as sha256:[0-9a-f]{12}…\\)$`, 'm'));
  t.match(run.stdout, new RegExp(`^${a}: ROLLED BACK to 0\\.1\\.0 after [\\d.]+ s: the new appliance exited \\(exit 3\\) before it was healthy$`, 'm'));
  t.notMatch(run.stdout, new RegExp(`${b}|${c}`));
  t.match(run.stderr, `upgrade to 0.3.0 stopped: 1 node(s) did not take it; not asked: ${b}, ${c}`);
  t.match(await nodes[0]!.node(), { version: '0.1.0', release: { running: '0.1.0', lastUpgrade: { to: '0.3.0', outcome: 'rolled-back' } } });
  for (const n of nodes.slice(1)) {
    t.match(await n.node(), { version: '0.1.0', release: { running: '0.1.0', previous: null, lastUpgrade: null } }, 'untouched');
    t.notOk((await events(n)).some((e) => e.to === 'release-installed'), 'never asked');
  }
});

t.test('one upload, canary then all: the others take the release from the grid\'s store, and all three run it', async (t) => {
  const run = await rollout(bundles.good);
  t.comment(run.stdout + run.stderr);
  t.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  const [a, b, c] = urls as [string, string, string];
  const line = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
  const at = {
    uploaded: line(new RegExp(`^${a}: took release 0\\.2\\.0 \\(from 0\\.1\\.0, signed by operator\\); switching \\(uploaded; in the grid's release store as sha256:[0-9a-f]{12}…\\)$`)),
    canaryHealthy: line(new RegExp(`^${a}: running 0\\.2\\.0 \\(healthy after [\\d.]+ s\\)$`)),
    ...Object.fromEntries([b, c].flatMap((url, i) => [
      [`fetched${i}`, line(new RegExp(`^${url}: took release 0\\.2\\.0 \\(from 0\\.1\\.0, signed by operator\\); switching \\(fetched from the grid's release store\\)$`))],
      [`healthy${i}`, line(new RegExp(`^${url}: running 0\\.2\\.0 \\(healthy after [\\d.]+ s\\)$`))],
    ])),
  };
  t.ok(Object.values(at).every((i) => i >= 0), 'every step told');
  t.equal(at.uploaded, 0, 'the canary first');
  t.equal(at.canaryHealthy, 1, 'healthy before the others are asked');
  t.equal(lines.at(-1), 'upgraded 3 node(s) to 0.2.0');
  for (const n of nodes) t.match(await n.node(), { version: '0.2.0', release: { running: '0.2.0', previous: '0.1.0', lastUpgrade: { outcome: 'succeeded' } } });
  for (const n of nodes.slice(1)) {
    t.ok((await events(n)).some((e) => e.to === 'release-installed' && /fetched from the grid's release store/.test(e.reason)), 'fetched, not uploaded');
  }
});

t.test('zone upgrade --release asks for a stored release by reference: the node fetches and verifies it, and refuses the version it runs', async (t) => {
  const stale = await runZone(['upgrade', '--release', '0.2.0', '--node', urls[1]!, '--key', key], { cwd: dir });
  t.equal(stale.code, 1);
  t.match(stale.stderr, /refused \(409 STALE\): \/manifest\/version: release 0\.2\.0 is the version this node runs/);
});
