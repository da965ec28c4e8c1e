// The WireGuard driver against real wireguard-go, network namespaces and dockerd: three
// "nodes" are namespaces on one test switch; busybox containers talk over the overlay.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Network } from '../../../blueprints/schema.ts';
import { generateBoxKeyPair, openSealed } from '../../../blueprints/seal.ts';
import type { NetworkSpec } from '../../../drivers/contract.ts';
import { WireguardDriver, isWireguardGo } from '../../../drivers/wireguard/driver.ts';
import { planGrid } from '../../../cli/grid-plan.ts';
import { networkId } from '../../../drivers/names.ts';
import { containerInterface, wireguardInterface } from '../../../drivers/wireguard/names.ts';
import { WIREGUARD_GO_RECEIVE_BUFFER } from '../../../drivers/wireguard/implementation.ts';
import { waitFor } from '../../helpers/wait.ts';

const run = promisify(execFile);
const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1))).stdout;
const quiet = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);

const TAG = 'wgdrv';                       // unique to this file: namespaces, links, containers
const SWITCH = `${TAG}-sw`;
const OWNER = 'ed25519:' + Buffer.alloc(32, 7).toString('base64');
const OTHER_OWNER = 'ed25519:' + Buffer.alloc(32, 9).toString('base64');
const nodes = [1, 2, 3].map((i) => ({ id: `${TAG}node${i}`, ns: `${TAG}-n${i}`, underlayIp: `192.168.213.${i}`, box: generateBoxKeyPair() }));

const tmp = await mkdtemp(join(tmpdir(), `${TAG}-`));
const containers: string[] = [];
const processes = new Map<number, string>(); // wireguard-go PID -> its interface

// Teardown in reverse: containers, networks (and their wireguard-go), the test's namespaces.
t.teardown(async () => {
  for (const name of containers) await quiet(sh('docker', 'rm', '-f', name));
  for (const d of drivers) for (const n of await d.list().catch(() => [])) await quiet(d.remove(n.id));
  for (const [pid, iface] of processes) if (await isWireguardGo(pid, iface)) process.kill(pid, 'SIGKILL');
  for (const n of nodes) await quiet(sh('ip', 'netns', 'del', n.ns));
  await quiet(sh('ip', 'netns', 'del', SWITCH));
  await rm(tmp, { recursive: true, force: true });
});

// The underlay: a switch namespace with a bridge, each node namespace plugged into it.
await sh('ip', 'netns', 'add', SWITCH);
await sh('ip', '-n', SWITCH, 'link', 'add', 'br0', 'type', 'bridge');
await sh('ip', '-n', SWITCH, 'link', 'set', 'br0', 'up');
for (const [i, n] of nodes.entries()) {
  await sh('ip', 'netns', 'add', n.ns);
  await sh('ip', '-n', SWITCH, 'link', 'add', `port${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.ns);
  await sh('ip', '-n', SWITCH, 'link', 'set', `port${i}`, 'master', 'br0', 'up');
  await sh('ip', '-n', n.ns, 'addr', 'add', `${n.underlayIp}/24`, 'dev', 'eth0');
  await sh('ip', '-n', n.ns, 'link', 'set', 'eth0', 'up');
  await sh('ip', '-n', n.ns, 'link', 'set', 'lo', 'up');
}

const drivers = nodes.map((n) => new WireguardDriver(
  { node: n.id, dataDir: join(tmp, n.id), openSecret: (sealed, place) => openSealed(sealed, n.box.secretKey, { ...place, node: n.id }) },
  { underlayNamespace: n.ns },
));

const grid = planGrid({
  network: 'mesh',
  owner: OWNER,
  blueprint: 'app',
  ipRange: '10.88.0.0/16',
  nodes: nodes.map((n) => ({ id: n.id, boxKey: n.box.publicKey, endpoint: `${n.underlayIp}:51820` })),
});
const specOf = (i: number, definition: Network, owner = OWNER, blueprint = 'app'): NetworkSpec => {
  const identity = { node: nodes[i]!.id, owner, blueprint, network: definition.name };
  return { ...identity, id: networkId(identity), definition };
};
const specs = grid.map((g, i) => specOf(i, g.network));

async function startContainer(name: string, command: string): Promise<number> {
  containers.push(name);
  await quiet(sh('docker', 'rm', '-f', name));
  await sh('docker', 'run', '-d', '--name', name, '--network', 'none', 'zone/busybox:latest', 'sh', '-c', command);
  return Number((await sh('docker', 'inspect', '-f', '{{.State.Pid}}', name)).trim());
}
// busybox 1.35's `wget -T` crashes: `timeout` bounds it instead.
const fetch = (from: string, ip: string) => sh('docker', 'exec', from, 'timeout', '3', 'wget', '-q', '-O', '-', `http://${ip}/`);
const reaches = (from: string, ip: string) => fetch(from, ip).then(() => true, () => false);
const httpd = (text: string) => `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`;

t.test('the driver reports wireguard-go when the kernel has no WireGuard', async (t) => {
  const f = await drivers[0]!.fingerprint();
  t.equal(f.available, true);
  t.match(f.version, /wireguard-tools/);
  t.equal(f.details.implementation, 'wireguard-go');
});

t.test('ensure builds each node\'s network and the nodes handshake', async (t) => {
  const observed = await Promise.all(drivers.map((d, i) => d.ensure(specs[i]!)));
  for (const o of observed) {
    t.ok(o.up, `${o.node}: interface up`);
    t.equal(o.peers.length, 2);
    t.equal(o.listenPort, 51820);
    if (o.pid) processes.set(o.pid, o.interface);
  }
  // The UDP socket is in the node's underlay namespace, not in the network's.
  t.match(await sh('ip', 'netns', 'exec', nodes[0]!.ns, 'ss', '-uanp'), /:51820 .*wireguard-go/);
  t.notMatch(await sh('ip', 'netns', 'exec', observed[0]!.namespace, 'ss', '-uan'), /:51820/);
  // The underlay is Ethernet (1500): the interface leaves room for what WireGuard adds.
  const wgLink = JSON.parse(await sh('ip', '-n', observed[0]!.namespace, '-j', 'link', 'show', 'dev', observed[0]!.interface)) as { mtu: number }[];
  t.equal(wgLink[0]!.mtu, 1424);
  // Debian's wireguard-go does not size its socket: the driver raised the host's default before it made it.
  const buffers = await sh('ip', 'netns', 'exec', nodes[0]!.ns, 'ss', '-Huamn', 'sport = :51820');
  const receive = [...buffers.matchAll(/rb(\d+)/g)].map((m) => Number(m[1]));
  t.ok(receive.length > 0 && receive.every((rb) => rb >= WIREGUARD_GO_RECEIVE_BUFFER), `receive buffers ${receive.join(', ')} >= ${WIREGUARD_GO_RECEIVE_BUFFER}`);
  t.equal((await drivers[0]!.fingerprint()).details.receiveBuffer, Number((await readFile('/proc/sys/net/core/rmem_default', 'utf8')).trim()));
  t.same((await drivers[0]!.list()).map((n) => n.id), [specs[0]!.id], 'list finds the network by its state file');
});

t.test('a container on node 1 fetches from a container on node 3 across the overlay', async (t) => {
  const client = `${TAG}-client1`;
  const server = `${TAG}-server3`;
  await drivers[0]!.attachContainer(specs[0]!, { workload: 'client', pid: await startContainer(client, 'exec sleep 600'), ip: '10.88.0.10' });
  await drivers[2]!.attachContainer(specs[2]!, { workload: 'server', pid: await startContainer(server, httpd('hello-from-node3')), ip: '10.88.2.10' });
  const body = await waitFor(() => fetch(client, '10.88.2.10'), { timeoutMs: 20_000, what: 'wget of node 3 from node 1' });
  t.equal(body.trim(), 'hello-from-node3');

  const peer = (await drivers[0]!.inspect(specs[0]!.id))!.peers.find((p) => p.allowedIPs.includes('10.88.2.0/24'))!;
  t.ok(peer.txBytes > 0 && peer.rxBytes > 0, `wg counters grew (tx ${peer.txBytes}, rx ${peer.rxBytes})`);
  t.ok(peer.latestHandshake > 0, 'a handshake happened');

  // Attaching again is a no-op; the second fetch goes through the same interface.
  await drivers[0]!.attachContainer(specs[0]!, { workload: 'client', pid: Number((await sh('docker', 'inspect', '-f', '{{.State.Pid}}', client)).trim()), ip: '10.88.0.10' });
  t.equal((await fetch(client, '10.88.2.10')).trim(), 'hello-from-node3');
  const after = (await drivers[0]!.inspect(specs[0]!.id))!.peers.find((p) => p.publicKey === peer.publicKey)!;
  t.ok(after.txBytes > peer.txBytes, 'more traffic crossed the interface');
});

t.test('a jumbo-frame underlay gives the running tunnel and new containers a larger MTU, and back', async (t) => {
  const underlay = async (mtu: number) => {
    for (const [i, n] of nodes.entries()) {
      await sh('ip', '-n', SWITCH, 'link', 'set', `port${i}`, 'mtu', String(mtu));
      await sh('ip', '-n', n.ns, 'link', 'set', 'eth0', 'mtu', String(mtu));
    }
  };
  const linkMtu = async (ns: string, dev: string) => (JSON.parse(await sh('ip', '-n', ns, '-j', 'link', 'show', 'dev', dev)) as { mtu: number }[])[0]!.mtu;
  const before = (await drivers[0]!.inspect(specs[0]!.id))!;
  await underlay(9000);
  t.teardown(() => underlay(1500));
  const jumbo = await drivers[0]!.ensure(specs[0]!);
  t.equal(jumbo.pid, before.pid, 'the same wireguard-go');
  t.equal(await linkMtu(jumbo.namespace, jumbo.interface), 8924);
  const client = `${TAG}-client1j`;
  const pid = await startContainer(client, 'exec sleep 600');
  await drivers[0]!.attachContainer(specs[0]!, { workload: 'jumbo', pid, ip: '10.88.0.11' });
  t.equal((JSON.parse(await sh('nsenter', `--net=/proc/${pid}/ns/net`, 'ip', '-j', 'link', 'show', 'dev', containerInterface(specs[0]!.id))) as { mtu: number }[])[0]!.mtu, 8924);
  t.equal((await waitFor(() => fetch(client, '10.88.2.10'), { timeoutMs: 20_000, what: 'node 3 from the jumbo container' })).trim(), 'hello-from-node3');

  await underlay(1500);
  const back = await drivers[0]!.ensure(specs[0]!);
  t.equal(await linkMtu(back.namespace, back.interface), 1424);
  t.equal((await fetch(`${TAG}-client1`, '10.88.2.10')).trim(), 'hello-from-node3');
});

t.test('a container IP outside the subnet is refused naming the field', async (t) => {
  await t.rejects(drivers[0]!.attachContainer(specs[0]!, { workload: 'client', pid: process.pid, ip: '10.88.2.99' }), {
    code: 'WORKLOAD_SPEC', message: /networks\/mesh\/ip: 10.88.2.99 is not a host address of subnet 10.88.0.0\/24/,
  });
});

t.test('ensuring an unchanged network changes nothing; a removed peer stops reaching, without a new tunnel', async (t) => {
  const before = (await drivers[0]!.inspect(specs[0]!.id))!;
  const again = await drivers[0]!.ensure(specs[0]!);
  t.equal(again.pid, before.pid, 'same wireguard-go process');
  const node3Key = before.peers.find((p) => p.allowedIPs.includes('10.88.2.0/24'))!.publicKey;
  const keptPeer = before.peers.find((p) => p.publicKey !== node3Key)!;
  t.ok(again.peers.find((p) => p.publicKey === keptPeer.publicKey)!.txBytes >= keptPeer.txBytes, 'counters were not reset');

  const wg = specs[0]!.definition.wireguard!;
  const without: NetworkSpec = { ...specs[0]!, definition: { ...specs[0]!.definition, wireguard: { ...wg, peers: wg.peers.filter((p) => p.publicKey !== node3Key) } } };
  const removed = await drivers[0]!.ensure(without);
  t.equal(removed.pid, before.pid, 'the tunnel was not torn down');
  t.same(removed.peers.map((p) => p.publicKey), [keptPeer.publicKey]);
  t.notOk(await reaches(`${TAG}-client1`, '10.88.2.10'), 'node 3 is no longer reachable');

  await drivers[0]!.ensure(specs[0]!);
  t.equal((await waitFor(() => fetch(`${TAG}-client1`, '10.88.2.10'), { timeoutMs: 20_000, what: 'node 3 reachable again' })).trim(), 'hello-from-node3');
});

t.test('an interface deleted by hand comes back after ensure', async (t) => {
  const before = (await drivers[2]!.inspect(specs[2]!.id))!;
  await sh('ip', '-n', before.namespace, 'link', 'del', before.interface);
  t.equal((await drivers[2]!.inspect(specs[2]!.id))!.up, false, 'seen as down');
  const after = await drivers[2]!.ensure(specs[2]!);
  if (after.pid) processes.set(after.pid, after.interface);
  t.ok(after.up);
  t.not(after.pid, before.pid, 'a new wireguard-go serves it');
  t.equal((await waitFor(() => fetch(`${TAG}-client1`, '10.88.2.10'), { timeoutMs: 20_000, what: 'node 3 reachable after repair' })).trim(), 'hello-from-node3');
});

t.test('list() starts no process while its last look holds: a deleted interface is seen at once, a link set down within observeMs', async (t) => {
  let clock = 0;
  const n = nodes[1]!;
  const driver = new WireguardDriver(
    { node: n.id, dataDir: join(tmp, n.id), openSecret: (sealed, place) => openSealed(sealed, n.box.secretKey, { ...place, node: n.id }) },
    { underlayNamespace: n.ns, observeMs: 60_000, now: () => clock },
  );
  const listed = async () => (await driver.list()).find((o) => o.id === specs[1]!.id)!;
  const before = await listed();
  t.ok(before.up, 'up at the first look');

  await sh('ip', '-n', before.namespace, 'link', 'set', before.interface, 'down');
  t.equal((await listed()).up, true, 'within observeMs list() answers from its last look: no ip, no wg');
  clock += 60_000;
  t.equal((await listed()).up, false, 'once observeMs has passed, a link set down by hand is seen');

  const repaired = await driver.ensure(specs[1]!);
  t.ok(repaired.up);
  t.ok((await listed()).up, 'an ensure ends the last look: the next list() looks again');

  // wireguard-go exits with its interface: seen from /proc, with the clock standing still.
  await sh('ip', '-n', before.namespace, 'link', 'del', before.interface);
  await waitFor(async () => !(await listed()).up, { timeoutMs: 10_000, what: 'list() to see the deleted interface' });
  const after = await driver.ensure(specs[1]!);
  if (after.pid) processes.set(after.pid, after.interface);
  t.ok(after.up, 'repaired');
});

t.test('a peer removed, an endpoint changed or a peer added by hand is reported at the next full look and repaired by ensure, the tunnel kept', async (t) => {
  let clock = 0;
  const n = nodes[0]!;
  const driver = new WireguardDriver(
    { node: n.id, dataDir: join(tmp, n.id), openSecret: (sealed, place) => openSealed(sealed, n.box.secretKey, { ...place, node: n.id }) },
    { underlayNamespace: n.ns, observeMs: 1000, now: () => clock },
  );
  const applied = await driver.ensure(specs[0]!);
  const listed = async () => (await driver.list()).find((o) => o.id === specs[0]!.id)!;
  const wgSet = (...args: string[]) => sh('ip', 'netns', 'exec', applied.namespace, 'wg', 'set', applied.interface, ...args);
  const key = (subnet: string) => applied.peers.find((p) => p.allowedIPs.includes(subnet))!.publicKey;
  const stranger = (await run('sh', ['-c', 'wg genkey | wg pubkey'])).stdout.trim();
  clock += 1000;
  t.equal((await listed()).drift, undefined, 'steady: a full look finds nothing to repair');

  const cases = [
    { what: 'a peer removed', change: ['peer', key('10.88.2.0/24'), 'remove'], drift: `peer ${key('10.88.2.0/24')} is missing` },
    { what: 'an endpoint changed', change: ['peer', key('10.88.1.0/24'), 'endpoint', '192.168.213.9:51820'], drift: `peer ${key('10.88.1.0/24')}: endpoint 192.168.213.9:51820, not 192.168.213.2:51820` },
    { what: 'a peer added', change: ['peer', stranger, 'allowed-ips', '10.88.99.0/24'], drift: `peer ${stranger} is not declared` },
  ];
  for (const c of cases) {
    await wgSet(...c.change);
    t.equal((await listed()).drift, undefined, `${c.what}: within observeMs list() answers from its last look`);
    clock += 1000;
    t.equal((await listed()).drift, c.drift, `${c.what}: seen at the next full look`);
    const repaired = await driver.ensure(specs[0]!);
    t.equal(repaired.pid, applied.pid, `${c.what}: the same wireguard-go`);
    t.same(repaired.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIPs]).sort(), applied.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIPs]).sort(), `${c.what}: the applied peers again`);
    t.equal((await listed()).drift, undefined, `${c.what}: repaired`);
  }
  t.equal((await waitFor(() => fetch(`${TAG}-client1`, '10.88.2.10'), { timeoutMs: 20_000, what: 'node 3 reachable after the repairs' })).trim(), 'hello-from-node3');
});

t.test('two owners with the same subnet on one node do not see each other', async (t) => {
  const local: Network = { name: 'lan', subnet: '10.99.1.0/24' };
  const mine = specOf(1, local);
  const theirs = specOf(1, local, OTHER_OWNER);
  t.not(mine.id, theirs.id);
  await drivers[1]!.ensure(mine);
  await drivers[1]!.ensure(theirs);
  await drivers[1]!.attachContainer(mine, { workload: 'a', pid: await startContainer(`${TAG}-a`, 'exec sleep 600'), ip: '10.99.1.10' });
  await drivers[1]!.attachContainer(mine, { workload: 'a2', pid: await startContainer(`${TAG}-a2`, httpd('same-owner')), ip: '10.99.1.11' });
  await drivers[1]!.attachContainer(theirs, { workload: 'b', pid: await startContainer(`${TAG}-b`, httpd('other-owner')), ip: '10.99.1.20' });
  t.equal((await waitFor(() => fetch(`${TAG}-a`, '10.99.1.11'), { timeoutMs: 10_000, what: 'same-owner fetch' })).trim(), 'same-owner');
  t.notOk(await reaches(`${TAG}-a`, '10.99.1.20'), 'the other owner\'s container is not reachable');

  await drivers[1]!.detachContainer(mine, '10.99.1.11');
  t.notOk(await reaches(`${TAG}-a`, '10.99.1.11'), 'a detached container is gone from the network');
});

t.test('private keys are in no state file, log or inspect output', async (t) => {
  const files = await readdir(join(tmp, nodes[0]!.id, 'networks'));
  const text = (await Promise.all(files.map((f) => readFile(join(tmp, nodes[0]!.id, 'networks', f), 'utf8')))).join('\n')
    + JSON.stringify(await drivers[0]!.list());
  const secret = openSealed(specs[0]!.definition.wireguard!.privateKey, nodes[0]!.box.secretKey, { owner: OWNER, node: nodes[0]!.id, blueprint: 'app', field: 'networks/mesh/wireguard/privateKey' });
  t.notMatch(text, secret);
});

t.test('a key copied into another owner\'s or blueprint\'s network is refused before anything is made', async (t) => {
  const definition = specs[0]!.definition;
  for (const copy of [specOf(0, definition, OTHER_OWNER), specOf(0, definition, OWNER, 'stolen'), specOf(0, { ...definition, name: 'other' })]) {
    await t.rejects(drivers[0]!.ensure(copy), { field: 'wireguard/privateKey', message: /bound to (owner|blueprint|field) / });
    t.equal(await drivers[0]!.inspect(copy.id), null, 'no namespace for it');
  }
});

t.test('remove deletes the namespace, the interface and its process', async (t) => {
  const o = (await drivers[2]!.inspect(specs[2]!.id))!;
  await drivers[2]!.remove(specs[2]!.id);
  t.notOk(existsSync(`/var/run/netns/${o.namespace}`));
  t.equal(o.interface, wireguardInterface(o.id));
  t.notOk(await isWireguardGo(o.pid!, o.interface), 'its wireguard-go is gone');
  t.notOk(existsSync(`/var/run/wireguard/${o.interface}.sock`), 'and its UAPI socket');
  t.same(await drivers[2]!.list(), []);
  await drivers[2]!.remove(specs[2]!.id); // idempotent
});
