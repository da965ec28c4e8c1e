// Forced name collisions against real network namespaces, links and wireguard-go: a
// namespace, state file, bridge or interface that holds a network's name but records
// another identity is refused with an error naming both, and left as it was; a
// WireGuard interface name taken on the machine is allocated around.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Network } from '../../../blueprints/schema.ts';
import { generateBoxKeyPair, openSealed } from '../../../blueprints/seal.ts';
import type { NetworkIdentity, NetworkSpec } from '../../../drivers/contract.ts';
import { describeNetwork, isWireguardGo, WireguardDriver } from '../../../drivers/wireguard/driver.ts';
import { planGrid } from '../../../cli/grid-plan.ts';
import { networkId } from '../../../drivers/names.ts';
import { containerInterface, networkAlias, vmBridgeAlias, vmLinks, wireguardInterface } from '../../../drivers/wireguard/names.ts';

const run = promisify(execFile);
const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1))).stdout;
const quiet = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);

const TAG = 'wgname';
const NODE = `${TAG}${process.pid}`;
const OWNER_A = `ed25519:${Buffer.alloc(32, 31).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 32).toString('base64')}`;
const UNDERLAY = `${TAG}-u`;
const VM_NS = `${TAG}-vm`;
const CONTAINER_NS = `${TAG}-c`;
const box = generateBoxKeyPair();
const tmp = await mkdtemp(join(tmpdir(), `${TAG}-`));
const sleepers: number[] = [];
const planted: string[] = []; // namespaces the test made under a network's name

/** A process that lives in namespace `ns` (what the driver joins links to by PID). */
async function sleeperIn(ns: string): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', ns, 'sleep', '600'], { stdio: 'ignore', detached: true });
  child.unref();
  sleepers.push(child.pid!);
  // `ip netns exec` execs sleep in the same PID: wait until it is in the namespace.
  const want = (await sh('ip', 'netns', 'identify', 'self').catch(() => '')).trim();
  for (let i = 0; i < 100; i++) {
    const at = (await sh('ip', 'netns', 'identify', String(child.pid)).catch(() => '')).trim();
    if (at === ns && at !== want) return child.pid!;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`the sleeper in ${ns} did not start`);
}

for (const ns of [UNDERLAY, VM_NS, CONTAINER_NS]) {
  await quiet(sh('ip', 'netns', 'del', ns));
  await sh('ip', 'netns', 'add', ns);
}
const vmPid = await sleeperIn(VM_NS);
const containerPid = await sleeperIn(CONTAINER_NS);
const dataDir = join(tmp, 'data');
const driver = new WireguardDriver(
  { node: NODE, dataDir, openSecret: (sealed, place) => openSealed(sealed, box.secretKey, { ...place, node: NODE }) },
  { underlayNamespace: UNDERLAY, vmNamespacePid: vmPid },
);

t.teardown(async () => {
  for (const n of await driver.list().catch(() => [])) {
    await quiet(driver.remove(n.id));
    if (n.pid && await isWireguardGo(n.pid, n.interface)) process.kill(n.pid, 'SIGKILL');
  }
  for (const pid of sleepers) process.kill(pid, 'SIGKILL');
  for (const ns of [...planted, UNDERLAY, VM_NS, CONTAINER_NS]) await quiet(sh('ip', 'netns', 'del', ns));
  await rm(tmp, { recursive: true, force: true });
});

const lan: Network = { name: 'lan', subnet: '10.97.1.0/24' };
const identityOf = (owner: string, network = 'lan'): NetworkIdentity => ({ node: NODE, owner, blueprint: 'app', network });
const specOf = (owner: string, definition: Network = lan): NetworkSpec => {
  const identity = identityOf(owner, definition.name);
  return { ...identity, id: networkId(identity), definition };
};
const aliasOf = async (ns: string, link: string) => JSON.parse(await sh('ip', '-n', ns, '-j', 'link', 'show', link))[0]?.ifalias as string | undefined;

/** A namespace under `spec`'s name, made behind the driver's back, its bridge saying `alias` (none when null). */
async function plantNamespace(spec: NetworkSpec, alias: string | null): Promise<void> {
  planted.push(spec.id);
  await sh('ip', 'netns', 'add', spec.id);
  if (alias === null) return;
  await sh('ip', '-n', spec.id, 'link', 'add', 'zone0', 'type', 'bridge');
  await sh('ip', '-n', spec.id, 'link', 'set', 'zone0', 'alias', alias);
}

t.test('a namespace under the wanted name whose bridge says another network is refused naming both, and left alone', async (t) => {
  const a = specOf(OWNER_A);
  const b = identityOf(OWNER_B);
  await plantNamespace(a, networkAlias(b));
  const err = await driver.ensure(a).then(() => null, (e: unknown) => e as Error);
  t.match(err, { code: 'NETWORK_SPEC', field: 'name' });
  t.match(err?.message, describeNetwork(a), 'names the wanted network');
  t.match(err?.message, networkAlias(b), 'names the network the bridge records');
  t.equal(await aliasOf(a.id, 'zone0'), networkAlias(b), 'the bridge still says so');
  t.same(await driver.list(), [], 'no state file was written: not ours');
  await driver.remove(a.id);
  t.ok(existsSync(`/var/run/netns/${a.id}`), 'a remove of the id does not delete someone else\'s namespace');
});

t.test('a namespace under the wanted name that this node never made is refused', async (t) => {
  const a = specOf(OWNER_A, { name: 'bare', subnet: '10.97.2.0/24' });
  await plantNamespace(a, null);
  await t.rejects(driver.ensure(a), { code: 'NETWORK_SPEC', field: 'name', message: /made by someone else \(no state file here, no identity on its bridge\)/ });
  t.same(JSON.parse(await sh('ip', '-n', a.id, '-j', 'link', 'show')).map((l: { ifname: string }) => l.ifname), ['lo'], 'nothing was added to it');
});

t.test('a state file under the wanted name that records another network is refused naming both, and kept', async (t) => {
  const a = specOf(OWNER_A, { name: 'kept', subnet: '10.97.3.0/24' });
  const b = identityOf(OWNER_B, 'kept');
  const path = join(dataDir, 'networks', `${a.id}.json`);
  await mkdir(join(dataDir, 'networks'), { recursive: true });
  const other = JSON.stringify({ id: a.id, ...b, interface: wireguardInterface(a.id), implementation: 'wireguard-go', pid: null });
  await writeFile(path, other);
  const err = await driver.ensure(a).then(() => null, (e: unknown) => e as Error);
  t.match(err, { code: 'NETWORK_SPEC', field: 'name' });
  t.match(err?.message, describeNetwork(a));
  t.match(err?.message, describeNetwork(b));
  t.equal(await readFile(path, 'utf8'), other, 'the state file is untouched');
  t.notOk(existsSync(`/var/run/netns/${a.id}`), 'no namespace was made');
  await rm(path);
});

t.test('a WireGuard interface name another wireguard-go serves on the machine is allocated around, its socket left alone', async (t) => {
  const [grid] = planGrid({ network: 'wg', owner: OWNER_A, blueprint: 'app', ipRange: '10.96.0.0/16', nodes: [{ id: NODE, boxKey: box.publicKey, endpoint: '192.0.2.1:51871' }] });
  const a = specOf(OWNER_A, grid!.network);
  const taken = wireguardInterface(a.id, 0);
  const socket = `/var/run/wireguard/${taken}.sock`;
  await mkdir('/var/run/wireguard', { recursive: true });
  const server: Server = createServer((c) => c.destroy());
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const o = await driver.ensure(a);
  t.equal(o.interface, wireguardInterface(a.id, 1), 'the next candidate');
  t.ok(o.up);
  t.ok(existsSync(socket) && server.listening, 'the other socket is still served');
  t.equal(JSON.parse(await readFile(join(dataDir, 'networks', `${a.id}.json`), 'utf8')).interface, o.interface, 'the name is recorded');
  t.equal(await aliasOf(a.id, o.interface), `zone:${a.id}`, 'and the interface says whose it is');
  await driver.remove(a.id);
  t.ok(existsSync(socket), 'removing the network leaves the other socket');
});

t.test('a VM bridge or a container interface under the wanted name that belongs to another network is refused and left alone', async (t) => {
  const c = specOf(OWNER_A, { name: 'vms', subnet: '10.97.4.0/24' });
  await driver.ensure(c);
  const other = specOf(OWNER_B, { name: 'vms', subnet: '10.97.4.0/24' });
  const { bridge } = vmLinks(c.id, '10.97.4.20');
  await sh('ip', '-n', VM_NS, 'link', 'add', bridge, 'type', 'bridge');
  await sh('ip', '-n', VM_NS, 'link', 'set', bridge, 'alias', vmBridgeAlias(other.id, '10.97.4.20'));
  await t.rejects(driver.attachVm(c, { workload: 'vm', ip: '10.97.4.20' }), { code: 'NETWORK_SPEC', message: new RegExp(`${bridge} in libvirtd's network namespace belongs to zone:${other.id}/10.97.4.20`) });

  const inside = containerInterface(c.id);
  await sh('ip', '-n', CONTAINER_NS, 'link', 'add', inside, 'type', 'bridge');
  await sh('ip', '-n', CONTAINER_NS, 'link', 'set', inside, 'alias', `zone:${other.id}`);
  await t.rejects(driver.attachContainer(c, { workload: 'web', pid: containerPid, ip: '10.97.4.10' }), { code: 'NETWORK_SPEC', message: new RegExp(`interface ${inside} of zone:${other.id}`) });

  await driver.remove(c.id);
  t.equal(await aliasOf(VM_NS, bridge), vmBridgeAlias(other.id, '10.97.4.20'), 'the other network\'s bridge outlives the remove');
  t.equal(await aliasOf(CONTAINER_NS, inside), `zone:${other.id}`, 'and so does the other interface');
});

t.test('upgrade: a network an older appliance made (8-hex namespace, bridges without this scheme\'s aliases) is listed and removed whole', async (t) => {
  const legacy = 'zn-0a1b2c3d';
  const identity = identityOf(OWNER_A, 'old');
  await mkdir(join(dataDir, 'networks'), { recursive: true });
  await writeFile(join(dataDir, 'networks', `${legacy}.json`), JSON.stringify({ id: legacy, ...identity, interface: 'zw-0a1b2c3d', implementation: 'wireguard-go', pid: null }));
  planted.push(legacy);
  await sh('ip', 'netns', 'add', legacy);
  await sh('ip', '-n', legacy, 'link', 'add', 'zone0', 'type', 'bridge');
  await sh('ip', '-n', VM_NS, 'link', 'add', 'zb-0a1b2c3d', 'type', 'bridge');
  await sh('ip', '-n', VM_NS, 'link', 'set', 'zb-0a1b2c3d', 'alias', `zone:${legacy}`);
  t.match((await driver.list()).find((n) => n.id === legacy), { owner: OWNER_A, network: 'old' }, 'listed: the engine removes what no blueprint declares under that id');
  await driver.remove(legacy);
  t.notOk(existsSync(`/var/run/netns/${legacy}`), 'its namespace is gone');
  await t.rejects(sh('ip', '-n', VM_NS, 'link', 'show', 'zb-0a1b2c3d'), 'its VM bridge too (found by its old alias)');
  t.notOk(existsSync(join(dataDir, 'networks', `${legacy}.json`)), 'and its state file');
});
