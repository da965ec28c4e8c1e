// zone cluster up 3 / down: three appliances in their own namespaces, an overlay
// between them, and nothing left behind afterwards.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { loadOrCreateIdentity } from '../../appliance/identity.ts';
import type { Network } from '../../blueprints/schema.ts';
import { openSealed } from '../../blueprints/seal.ts';
import { WireguardDriver } from '../../drivers/wireguard/driver.ts';
import { networkId } from '../../drivers/wireguard/names.ts';
import type { ClusterState } from '../../cli/cluster/grid.ts';

const run = promisify(execFile);
const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1))).stdout;
const zone = (...args: string[]) => run('node', ['--import', 'tsx', 'cli/zone.ts', ...args], { timeout: 280_000 });

const NAME = 'ctest';                        // unique to this file: namespaces zcl-ctest-*
const SUBNET = '10.214.7.0/24';
const base = await mkdtemp(join(tmpdir(), 'zone-cluster-test-'));
const dir = join(base, 'cluster');
const containers: string[] = [];
let state: ClusterState | null = null;

t.teardown(async () => {
  if (existsSync(join(dir, 'cluster.json'))) await zone('cluster', 'down', '--name', NAME, '--dir', dir).catch(() => undefined);
  for (const c of containers) await sh('docker', 'rm', '-f', c).catch(() => undefined);
  for (const n of state?.nodes ?? []) if (n.pid) { try { process.kill(n.pid, 'SIGKILL'); } catch { /* already gone */ } }
  for (const ns of (await sh('ip', 'netns', 'list')).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`zcl-${NAME}-`))) {
    await sh('ip', 'netns', 'del', ns).catch(() => undefined);
  }
  await rm(base, { recursive: true, force: true });
});

t.test('up 3 starts three nodes with their own identity and API, trusting one operator key', async (t) => {
  const { stdout } = await zone('cluster', 'up', '3', '--name', NAME, '--subnet', SUBNET, '--dir', dir);
  state = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterState;
  t.equal(state.nodes.length, 3);
  for (const n of state.nodes) {
    t.match(stdout, `${n.id}  ${n.api}`, `prints node ${n.index}'s id and API`);
    const info = await (await fetch(`${n.api}/v1/node`)).json() as { id?: string; boxKey?: string };
    t.same([info.id, info.boxKey], [n.id, n.boxKey], `node ${n.index} answers from the host with its identity`);
  }
  t.equal(new Set(state.nodes.map((n) => n.id)).size, 3, 'three identities');
  const policies = await Promise.all(state.nodes.map((n) => readFile(join(n.dataDir, 'config.json'), 'utf8')));
  t.ok(policies.every((p) => p === policies[0]), 'every node reads the same trust policy');
  t.match(await readFile(join(dir, 'trust-policy.json'), 'utf8'), JSON.parse(await readFile(state.operatorKey, 'utf8')).publicKey);
  await t.rejects(zone('cluster', 'up', '1', '--name', NAME, '--subnet', SUBNET, '--dir', dir), { code: 1, stderr: /already up/ });
});

t.test('an overlay planned from the cluster\'s nodes file carries a container on node 1 to one on node 3', async (t) => {
  const nodes = state!.nodes;
  const { stdout } = await zone('network', 'plan', '--nodes', join(dir, 'nodes.yaml'), '--name', 'mesh', '--range', '10.89.0.0/16');
  const plan = parse(stdout) as Record<string, { networks: Network[] }>;
  // Each node's driver as its appliance would run it: underlay = the node's namespace, files in its data dir.
  const specs = nodes.map((n) => {
    const identity = { node: n.id!, owner: 'ed25519:' + Buffer.alloc(32, 5).toString('base64'), blueprint: 'app', network: 'mesh' };
    return { ...identity, id: networkId(identity), definition: plan[n.id!]!.networks[0]! };
  });
  const drivers = nodes.map((n) => new WireguardDriver(
    { node: n.id!, dataDir: join(n.dataDir, 'drivers'), openSecret: (s) => openSealed(s, loadOrCreateIdentity(n.dataDir).box.secretKey) },
    { underlayNamespace: n.namespace },
  ));
  for (const [i, d] of drivers.entries()) t.ok((await d.ensure(specs[i]!)).up);

  const start = async (name: string, labelNode: string, cmd: string) => {
    containers.push(name);
    await sh('docker', 'run', '-d', '--name', name, '--label', `zone.node=${labelNode}`, '--network', 'none', 'zone/busybox:latest', 'sh', '-c', cmd);
    return Number((await sh('docker', 'inspect', '-f', '{{.State.Pid}}', name)).trim());
  };
  await drivers[0]!.attachContainer(specs[0]!, { workload: 'client', pid: await start(`${NAME}-client`, nodes[0]!.id!, 'exec sleep 600'), ip: '10.89.0.10' });
  await drivers[2]!.attachContainer(specs[2]!, { workload: 'web', pid: await start(`${NAME}-web`, nodes[2]!.id!, 'mkdir /www && echo via-overlay > /www/index.html && exec httpd -f -p 80 -h /www'), ip: '10.89.2.10' });
  const { waitFor } = await import('../helpers/wait.ts');
  const body = await waitFor(() => sh('docker', 'exec', `${NAME}-client`, 'timeout', '3', 'wget', '-q', '-O', '-', 'http://10.89.2.10/'), { timeoutMs: 20_000, what: 'node 1 -> node 3 over the overlay' });
  t.equal(body.trim(), 'via-overlay');
});

t.test('down leaves no namespace, link, process or container behind', async (t) => {
  const nodes = state!.nodes;
  const wgPids = (await sh('pgrep', '-x', 'wireguard-go').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const { stdout } = await zone('cluster', 'down', '--name', NAME, '--dir', dir);
  t.match(stdout, /cluster ctest is down: 3 nodes removed/);
  t.same((await sh('ip', 'netns', 'list')).split('\n').filter((l) => l.startsWith(`zcl-${NAME}-`)), [], 'no node or switch namespace');
  const overlayNs = nodes.map((n) => networkId({ node: n.id!, owner: 'ed25519:' + Buffer.alloc(32, 5).toString('base64'), blueprint: 'app', network: 'mesh' }));
  t.ok(overlayNs.every((ns) => !existsSync(`/var/run/netns/${ns}`)), 'no overlay namespace');
  await t.rejects(sh('ip', 'link', 'show', `zcl-${NAME}`), 'no host link');
  for (const n of nodes) t.notOk(existsSync(`/proc/${n.pid}/cmdline`) && (await readFile(`/proc/${n.pid}/cmdline`, 'utf8')).includes('appliance/main.ts'), `appliance of node ${n.index} stopped`);
  const leftWg = (await sh('pgrep', '-x', 'wireguard-go').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const ours = await Promise.all(leftWg.filter((p) => wgPids.includes(p)).map(async (p) => (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0')));
  t.same(ours.filter((args) => overlayNs.some((ns) => args.includes(`zw-${ns.slice(3)}`))), [], 'no wireguard-go of the cluster');
  const labelled = await Promise.all(nodes.map((n) => sh('docker', 'ps', '-aq', '--filter', `label=zone.node=${n.id}`)));
  t.same(labelled.map((s) => s.trim()), ['', '', ''], 'no container with the nodes\' labels');
  t.notOk(existsSync(dir), 'the cluster directory is gone');
});
