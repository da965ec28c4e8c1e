// The node's firewall for real: nft rules in dockerd's namespace, and a plain busybox
// container of an owner probing the node's API and NATS ports on every address of
// the host (its bridge's gateway among them).
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { loadNodeConfig, type NodeConfig } from '../../../appliance/config.ts';
import { installWorkloadFirewall, removeWorkloadFirewall } from '../../../appliance/firewall/firewall.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { opened, reachableFrom } from '../../helpers/probe.ts';

const execFileP = promisify(execFile);
const NODE = `fw${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 0xf).toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'zone-fw-'));
const ctx: DriverContext = { node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } };
const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
const servers: Server[] = [];

t.teardown(async () => {
  await removeWorkloadFirewall(NODE);
  await driver.close();
  await removeNodeContainers([NODE]);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for one of the node's services: accepts on every address of the host. */
async function listenEverywhere(): Promise<number> {
  const server = createServer((socket) => socket.end());
  servers.push(server);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '0.0.0.0', resolve));
  return (server.address() as { port: number }).port;
}

function configOf(ports: { api: number; nats: number; routes: number }, open: string[]): NodeConfig {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ nats: { listen: `0.0.0.0:${ports.nats}`, cluster: { name: 'fw', listen: `0.0.0.0:${ports.routes}`, routes: [] } }, firewall: { open } }));
  return loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_CONFIG: file, ZONE_LISTEN: `0.0.0.0:${ports.api}` } });
}

async function table(): Promise<string | null> {
  return execFileP('nft', ['list', 'table', 'inet', `zone-${NODE}`]).then((r) => r.stdout, () => null);
}

t.test('a container gets no answer from the node\'s ports on any host address, unless the config opens one', async (t) => {
  const ports = { api: await listenEverywhere(), nats: await listenEverywhere(), routes: await listenEverywhere() };
  const definition = normalizeWorkload({ name: 'probe', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] } as ContainerWorkload);
  const spec: WorkloadSpec = { node: NODE, owner: OWNER, blueprint: 'fw', workload: 'probe', id: `zone-fw-probe-${NODE}`, specHash: specHash(definition), definition };
  await driver.ensure(spec);
  // Every IPv4 address of the host, the container's own gateway (its owner bridge) among them.
  const addresses = Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address);
  t.ok(addresses.length >= 2, `the host has addresses to try: ${addresses.join(', ')}`);
  const targets = (list: number[]) => addresses.flatMap((a) => list.map((p) => `${a}:${p}`)).sort();
  const all = targets([ports.api, ports.nats, ports.routes]);

  t.strictSame(opened(await reachableFrom(spec.id, all)), all, 'without the firewall every port answers on every address');

  const closed = await installWorkloadFirewall(NODE, configOf(ports, []));
  t.equal(closed.table, `zone-${NODE}`);
  const first = await table();
  await installWorkloadFirewall(NODE, configOf(ports, []));
  t.equal(await table(), first, 'installing again changes nothing');
  t.strictSame(opened(await reachableFrom(spec.id, all)), [], 'no port answers on any address');

  await installWorkloadFirewall(NODE, configOf(ports, ['api']));
  t.strictSame(opened(await reachableFrom(spec.id, all)), targets([ports.api]), 'with the API opened, it answers, NATS does not');

  await closed.remove();
  t.equal(await table(), null, 'the table is gone');
  t.strictSame(opened(await reachableFrom(spec.id, all)), all, 'and nothing of it is left');
});
