// The local cluster: N nodes on this machine, each in its own network namespace with
// its own appliance process (data dir, identity, API), all trusting one operator key.
// Everything it creates is recorded in DIR/cluster.json as soon as it exists, so
// `down` (or a failed `up`) removes exactly that. The nodes' nats-servers take clients on
// their own loopback only and route to each other with the grid's route password over
// mutual TLS: DIR holds the grid's CA and password, each node's data dir its certificate.
// With `vm`, each node is a VM booted from the node image instead (vm.ts), on a bridge
// rather than a switch namespace; the state, keys and nodes.yaml are the same.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import { LABELS } from '../../drivers/docker/spec.ts';
import { DEFAULT_SECRETS_ROOT } from '../../drivers/docker/secrets.ts';
import { removeOwnerNetworks } from '../../drivers/docker/owner-network.ts';
import { DATA_DIR_MODE } from '../../appliance/config.ts';
import { loadOrCreateIdentity } from '../../appliance/identity.ts';
import { APPLIANCE_NODE_FLAGS } from '../../appliance/node-flags.ts';
import { removeWorkloadFirewall } from '../../appliance/firewall/firewall.ts';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { WireguardDriver } from '../../drivers/wireguard/driver.ts';
import { runCommand } from '../../lib/exec.ts';
import { NETWORK_ID } from '../../drivers/wireguard/state.ts';
import { commandLine, processRuns, stopProcess } from '../../lib/processes.ts';
import { API_PORT, clusterLayout, NATS_CLUSTER_PORT, NATS_PORT, WIREGUARD_PORT, type ClusterLayout } from './layout.ts';
import { makeGridCa, makeRouteCertificate, writeRoutePassword, type KeyAndCertificate } from './pki.ts';
import { checkWalkable, destroyVm, makeBridge, prepareVms, removeBridge, startVmNode, untilVmAnswering, vmIdentity } from './vm.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const APPLIANCE_MAIN = join(REPO, 'api/main.ts');
/** How long `up --vm` waits for the nodes to answer, per node booting at once. */
const VM_START_MS_PER_NODE = 600_000;
export const STATE_FILE = 'cluster.json';
export const OPERATOR_KEY = 'operator.key';
export const NODES_FILE = 'nodes.yaml';
export const ROUTE_SECRET_FILE = 'route-secret';

const ClusterNode = Type.Object({
  index: Type.Integer({ minimum: 1 }),
  namespace: Type.String({ pattern: '^zcl-[a-z0-9]{1,6}-n[0-9]{1,2}$' }),
  address: Type.String(),
  api: Type.String(),
  dataDir: Type.String(),
  id: Type.Union([Type.String({ pattern: '^[a-z0-9]{1,64}$' }), Type.Null()]),
  boxKey: Type.Union([Type.String(), Type.Null()]),
  pid: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  /** A VM node (`up --vm`): its libvirt domain (named as `namespace`) and its files on the host. */
  vm: Type.Optional(Type.Object({ domain: Type.String(), disk: Type.String(), configDisk: Type.String(), console: Type.String() })),
});
export const ClusterState = Type.Object({
  name: Type.String(),
  subnet: Type.String(),
  /** The namespace cluster's switch; a VM cluster has none (its host link is a bridge). */
  switchNamespace: Type.Optional(Type.String({ pattern: '^zcl-[a-z0-9]{1,6}-sw$' })),
  hostLink: Type.String({ pattern: '^zcl-[a-z0-9]{1,6}$' }),
  /** A VM cluster: the node image's digest and the accelerator its VMs run with. */
  vm: Type.Optional(Type.Object({ image: Type.String(), accelerator: Type.String() })),
  operatorKey: Type.String(),
  nodes: Type.Array(ClusterNode),
});
export type ClusterState = Static<typeof ClusterState>;
export type ClusterNode = Static<typeof ClusterNode>;

export interface UpOptions {
  dir: string;
  name: string;
  subnet: string;
  count: number;
  /** How long one appliance may take to answer on its API. */
  startTimeoutMs?: number;
  /** Benchmarks only: the nats routes without TLS (still with the route password), to measure what TLS costs. */
  plainRoutes?: boolean;
  /** Nodes as VMs booted from the node image (built first when not cached). */
  vm?: boolean;
  /** Progress lines (the image build). */
  log?: (line: string) => void;
}

export class ClusterError extends Error {
  override name = 'ClusterError';
}

const sh = (...command: string[]) => runCommand(command);
const quietly = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);

async function saveState(dir: string, state: ClusterState): Promise<void> {
  await writeFile(join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
}

export async function readClusterState(dir: string): Promise<ClusterState | null> {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return null;
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    throw new ClusterError(`${path} is not JSON; delete what it listed by hand`);
  }
  if (!Value.Check(ClusterState, value)) {
    const e = Value.Errors(ClusterState, value).First();
    throw new ClusterError(`${path}: ${e?.path || '/'}: ${e?.message ?? 'invalid'}`);
  }
  return value;
}

/** Brings a cluster up; on any failure removes what it made and rethrows. */
export async function clusterUp(options: UpOptions): Promise<ClusterState> {
  if (process.getuid?.() !== 0) throw new ClusterError('zone cluster needs root: it creates network namespaces and links (run it with sudo)');
  const dir = resolve(options.dir);
  if (await readClusterState(dir)) throw new ClusterError(`a cluster is already up in ${dir}: run zone cluster down first`);
  const layout = clusterLayout(options.name, options.subnet, options.count);
  for (const ns of [layout.switchNamespace, ...layout.nodes.map((n) => n.namespace)]) {
    if (existsSync(`/var/run/netns/${ns}`)) throw new ClusterError(`network namespace ${ns} already exists: another cluster named ${layout.name} is up (give --name)`);
  }
  if (existsSync(`/sys/class/net/${layout.hostLink}`)) throw new ClusterError(`link ${layout.hostLink} already exists: another cluster named ${layout.name} is up (give --name)`);
  // Walkable, not listable, as a node's data folder (its files are 0600): qemu, as its own user, reaches the VM files inside.
  await mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
  const operatorKey = join(dir, OPERATOR_KEY);
  const operator = generateSigningKeyPair();
  await rm(operatorKey, { force: true });
  writeSigningKey(operatorKey, operator);
  // A local grid's operator runs it for every owner it tries out: it may act for any owner.
  const policy: TrustPolicy = { signers: [{ key: operator.publicKey, weight: 1, label: 'operator', owners: '*' }], threshold: 1 };
  await writeFile(join(dir, 'trust-policy.json'), JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 });

  const state: ClusterState = {
    name: layout.name, subnet: layout.subnet, hostLink: layout.hostLink, operatorKey, nodes: [],
    ...(options.vm ? {} : { switchNamespace: layout.switchNamespace }),
  };
  await saveState(dir, state);
  try {
    const ca = await makeGridCa(dir, layout.name);
    await writeRoutePassword(join(dir, ROUTE_SECRET_FILE));
    if (options.vm) {
      await upVmNodes(dir, layout, state, ca, policy, options);
      await writeNodesFile(dir, state);
      return state;
    }
    await buildSwitch(layout);
    const exits: Promise<number | null>[] = [];
    for (const node of layout.nodes) {
      const record: ClusterNode = { index: node.index, namespace: node.namespace, address: node.address, api: node.api, dataDir: join(dir, `n${node.index}`), id: null, boxKey: null, pid: null };
      state.nodes.push(record);
      await saveState(dir, state);
      await plugNode(layout, node.index);
      await mkdir(record.dataDir, { recursive: true, mode: DATA_DIR_MODE });
      const routeTls = options.plainRoutes ? null : await makeRouteCertificate(ca, record.dataDir, 'nats-route', [node.address]);
      const files = { routeSecret: join(dir, ROUTE_SECRET_FILE), ...(routeTls ? { tls: { ca: ca.certFile, cert: routeTls.certFile, key: routeTls.keyFile } } : {}) };
      exits.push((await startNode(dir, record, state, natsOf(layout, node, files))).exited);
    }
    // All at once: each node's nats-server waits for a quorum of its cluster before its API answers.
    await Promise.all(state.nodes.map((n, i) => untilAnswering(n, exits[i]!, options.startTimeoutMs ?? 120_000)));
    await writeNodesFile(dir, state);
    return state;
  } catch (e) {
    await clusterDown(dir).catch(() => undefined);
    throw e;
  }
}

async function writeNodesFile(dir: string, state: ClusterState): Promise<void> {
  await writeFile(join(dir, NODES_FILE), stringify({
    nodes: state.nodes.map((n) => ({ id: n.id, boxKey: n.boxKey, endpoint: `${n.address}:${WIREGUARD_PORT}` })),
  }));
}

/**
 * The VM nodes: the image (built or cached), the bridge, then per node its identity and
 * config disk (its data directory's first files: config.json, the trust policy, its keys
 * and route credentials, all named relative to it) and its domain; then all answering.
 */
async function upVmNodes(dir: string, layout: ClusterLayout, state: ClusterState, ca: KeyAndCertificate, policy: TrustPolicy, options: UpOptions): Promise<void> {
  await checkWalkable(dir);
  const start = await prepareVms(options.log ?? (() => undefined));
  state.vm = { image: start.image.digest, accelerator: start.accelerator.accelerator };
  await saveState(dir, state);
  await makeBridge(layout);
  const routePassword = await readFile(join(dir, ROUTE_SECRET_FILE));
  const caCert = await readFile(ca.certFile);
  for (const node of layout.nodes) {
    const record: ClusterNode = { index: node.index, namespace: node.namespace, address: node.address, api: node.api, dataDir: join(dir, `n${node.index}`), id: null, boxKey: null, pid: null };
    state.nodes.push(record);
    await saveState(dir, state);
    const identity = await vmIdentity(record.dataDir);
    record.id = identity.id;
    record.boxKey = identity.boxKey;
    const data: Record<string, string | Buffer> = { ...identity.files, 'trust-policy.json': JSON.stringify(policy, null, 2) + '\n' };
    let tls: { ca: string; cert: string; key: string } | undefined;
    if (layout.nodes.length > 1 && !options.plainRoutes) {
      const own = await makeRouteCertificate(ca, record.dataDir, 'nats-route', [node.address]);
      Object.assign(data, { 'ca.crt': caCert, 'nats-route.crt': await readFile(own.certFile), 'nats-route.key': await readFile(own.keyFile) });
      tls = { ca: 'ca.crt', cert: 'nats-route.crt', key: 'nats-route.key' };
    }
    if (layout.nodes.length > 1) data[ROUTE_SECRET_FILE] = routePassword;
    data['config.json'] = JSON.stringify({
      listen: `${node.address}:${API_PORT}`, trustPolicy: 'trust-policy.json', reconcile: { resyncSeconds: 5 },
      nats: natsOf(layout, node, { routeSecret: ROUTE_SECRET_FILE, ...(tls ? { tls } : {}) }),
    }, null, 2) + '\n';
    record.vm = await startVmNode(layout, start, { domain: node.namespace, address: node.address, dir: record.dataDir, data });
    await saveState(dir, state);
  }
  // Under TCG a node takes minutes to boot; all boot at once, sharing the host's cores, so
  // N nodes take about N times as long (3 on 2 loaded cores: node 3 missed a 600 s bound).
  await Promise.all(state.nodes.map((n) => untilVmAnswering(n.api, n.vm!, options.startTimeoutMs ?? VM_START_MS_PER_NODE * state.nodes.length)));
}

async function buildSwitch(layout: ClusterLayout): Promise<void> {
  const sw = layout.switchNamespace;
  await sh('ip', 'netns', 'add', sw);
  await sh('ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
  await sh('ip', '-n', sw, 'link', 'set', 'br0', 'up');
  await sh('ip', 'link', 'add', layout.hostLink, 'type', 'veth', 'peer', 'name', 'host', 'netns', sw);
  await sh('ip', '-n', sw, 'link', 'set', 'host', 'master', 'br0', 'up');
  await sh('ip', 'addr', 'add', `${layout.hostAddress}/${layout.prefixLength}`, 'dev', layout.hostLink);
  await sh('ip', 'link', 'set', layout.hostLink, 'up');
}

async function plugNode(layout: ClusterLayout, index: number): Promise<void> {
  const node = layout.nodes[index - 1]!;
  const ns = node.namespace;
  await sh('ip', 'netns', 'add', ns);
  await sh('ip', '-n', layout.switchNamespace, 'link', 'add', node.switchPort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await sh('ip', '-n', layout.switchNamespace, 'link', 'set', node.switchPort, 'master', 'br0', 'up');
  await sh('ip', '-n', ns, 'addr', 'add', `${node.address}/${layout.prefixLength}`, 'dev', 'eth0');
  await sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
  await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  await sh('ip', '-n', ns, 'route', 'add', 'default', 'via', layout.hostAddress);
}

/**
 * The node's pseudokernel: its nats-server takes clients on the node's loopback (the
 * appliance's own connections) and routes to every other node's on its address, with
 * the grid's password, over mutual TLS with `files.tls` (none: plain routes, benchmarks only).
 */
function natsOf(layout: ClusterLayout, node: ClusterLayout['nodes'][number], files: { routeSecret: string; tls?: { ca: string; cert: string; key: string } }): object {
  const others = layout.nodes.filter((n) => n.index !== node.index);
  if (others.length === 0) return { listen: `127.0.0.1:${NATS_PORT}` };
  return {
    listen: `127.0.0.1:${NATS_PORT}`,
    cluster: {
      name: `zone-${layout.name}`,
      listen: `${node.address}:${NATS_CLUSTER_PORT}`,
      routes: others.map((n) => `${n.address}:${NATS_CLUSTER_PORT}`),
      routeSecret: files.routeSecret,
      ...(files.tls ? { tls: files.tls } : { plainRoutes: true }),
    },
  };
}

/** Starts the node's appliance; `exited` settles when its process ends. */
async function startNode(dir: string, node: ClusterNode, state: ClusterState, nats: object): Promise<{ exited: Promise<number | null> }> {
  await mkdir(node.dataDir, { recursive: true, mode: DATA_DIR_MODE });
  const identity = loadOrCreateIdentity(node.dataDir);
  node.id = identity.id;
  node.boxKey = identity.box.publicKey;
  const config = join(node.dataDir, 'config.json');
  // A test grid repairs drift in seconds rather than at the production resync.
  await writeFile(config, JSON.stringify({ trustPolicy: join(dir, 'trust-policy.json'), reconcile: { resyncSeconds: 5 }, nats }, null, 2) + '\n', { mode: 0o600 });
  const logPath = join(node.dataDir, 'appliance.log');
  const log = await open(logPath, 'a', 0o600);
  const child = spawn('nsenter', [`--net=/var/run/netns/${node.namespace}`, '--', process.execPath, ...APPLIANCE_NODE_FLAGS, '--import', 'tsx', APPLIANCE_MAIN], {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, ZONE_DATA_DIR: node.dataDir, ZONE_CONFIG: config, ZONE_LISTEN: `${node.address}:${new URL(node.api).port}` },
  });
  await log.close();
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  child.once('error', () => undefined);
  child.unref();
  if (child.pid === undefined) throw new ClusterError('nsenter could not be started');
  node.pid = child.pid;
  await saveState(dir, state);
  return { exited };
}

/** Waits until the node's API answers; fails when its process exits first (`exited`) or at the timeout. */
async function untilAnswering(node: ClusterNode, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  const logPath = join(node.dataDir, 'appliance.log');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Any HTTP answer means the API listens (the route set depends on the appliance version).
    const answered = await fetch(`${node.api}/healthz`, { signal: AbortSignal.timeout(2000) }).then(() => true, () => false);
    if (answered) return;
    const code = await Promise.race([exited, delay(200).then(() => 'running' as const)]);
    if (code !== 'running' || Date.now() > deadline) {
      const tail = (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n  ');
      throw new ClusterError(`node ${node.index} ${code === 'running' ? `did not answer on ${node.api} within ${timeoutMs / 1000}s` : `exited (${code})`}; last lines of ${logPath}:\n  ${tail}`);
    }
  }
}

/** The PID still runs the appliance of this cluster node (PIDs are reused). */
async function runsAppliance(pid: number, node: ClusterNode): Promise<boolean> {
  const [cmdline, environ] = await Promise.all([commandLine(pid), readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')]);
  return cmdline.some((arg) => arg.includes(APPLIANCE_MAIN)) && environ.split('\0').includes(`ZONE_DATA_DIR=${node.dataDir}`) && await processRuns(pid);
}

async function stopAppliance(node: ClusterNode): Promise<void> {
  const pid = node.pid;
  if (pid === null || !(await runsAppliance(pid, node))) return;
  await stopProcess(pid, () => runsAppliance(pid, node), 15_000, 100);
}

/** Everything the node's WireGuard driver recorded, wherever the appliance keeps driver files. */
async function removeNodeNetworks(node: ClusterNode): Promise<void> {
  if (!node.id || !existsSync(node.dataDir)) return;
  const files = (await readdir(node.dataDir, { recursive: true }))
    .filter((f) => basename(dirname(f)) === 'networks' && f.endsWith('.json') && NETWORK_ID.test(basename(f, '.json')));
  for (const file of files) {
    const networksDir = dirname(join(node.dataDir, file));
    const driver = new WireguardDriver({
      node: node.id, dataDir: dirname(networksDir),
      openSecret: () => { throw new ClusterError('removing a network needs no secret'); },
    });
    await driver.remove(file.slice(file.lastIndexOf('/') + 1, -'.json'.length));
  }
}

/** Workloads the nodes' drivers made, found by their `zone.node` label, then their owners' networks. */
export async function removeNodeContainers(ids: string[]): Promise<void> {
  const docker = new Docker();
  // Docker ANDs label filters: one query per node.
  const found = (await Promise.all(ids.map((id) => docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${id}`] } })))).flat();
  await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  // Their sealed values' files (drivers/docker/secrets.ts) go with them.
  await Promise.all(ids.map((id) => rm(join(DEFAULT_SECRETS_ROOT, id), { recursive: true, force: true })));
  await removeOwnerNetworks(docker, ids);
}

/** Removes processes, firewall tables, containers, networks, namespaces, links and DIR; what is already gone is skipped. */
export async function clusterDown(dirOption: string): Promise<ClusterState> {
  const dir = resolve(dirOption);
  const state = await readClusterState(dir);
  if (!state) throw new ClusterError(`no cluster in ${dir} (no ${STATE_FILE})`);
  if (state.vm) {
    // What the nodes made lives inside their VMs.
    for (const node of state.nodes) await destroyVm(node.vm?.domain ?? node.namespace);
    await removeBridge(state.hostLink);
    await rm(dir, { recursive: true, force: true });
    return state;
  }
  for (const node of state.nodes) await stopAppliance(node);
  // A node that stopped cleanly removed its own; one that crashed did not.
  for (const node of state.nodes) if (node.id) await removeWorkloadFirewall(node.id);
  await removeNodeContainers(state.nodes.flatMap((n) => (n.id ? [n.id] : [])));
  for (const node of state.nodes) await removeNodeNetworks(node);
  for (const node of state.nodes) {
    if (existsSync(`/var/run/netns/${node.namespace}`)) await sh('ip', 'netns', 'del', node.namespace);
  }
  if (state.switchNamespace && existsSync(`/var/run/netns/${state.switchNamespace}`)) await sh('ip', 'netns', 'del', state.switchNamespace);
  await quietly(sh('ip', 'link', 'del', state.hostLink)); // gone with the switch's end, normally
  await rm(dir, { recursive: true, force: true });
  return state;
}
