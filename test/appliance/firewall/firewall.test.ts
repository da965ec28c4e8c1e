// The node's firewall for real: nft rules in dockerd's namespace, and a plain busybox
// container of an owner probing the node's API and NATS ports on every address of
// the host (its bridge's gateway among them).
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { loadNodeConfig, type NodeConfig } from '../../../appliance/config.ts';
import { installWorkloadFirewall, removeWorkloadFirewall } from '../../../appliance/firewall/firewall.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { opened, reachableFrom } from '../../helpers/probe.ts';
import { workloadId } from '../../../drivers/names.ts';

const execFileP = promisify(execFile);
const NODE = `fw${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 0xf).toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'zone-fw-'));
const ctx: DriverContext = { node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } };
const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
const servers: Server[] = [];
const definition = normalizeWorkload({ name: 'probe', kind: 'container', image: 'zone/busybox', command: ['sleep', '3600'] } as ContainerWorkload);
const spec: WorkloadSpec = { node: NODE, owner: OWNER, blueprint: 'fw', workload: 'probe', id: workloadId(NODE, OWNER, 'fw', 'probe'), specHash: specHash(definition), definition };
/** Every IPv4 address of the host, once the probe's owner bridge (its gateway) is up. */
const hostAddresses = () => Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address);
const targetsOf = (ports: number[]) => hostAddresses().flatMap((a) => ports.map((p) => `${a}:${p}`)).sort();

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
  writeFileSync(file, JSON.stringify({ nats: { listen: `0.0.0.0:${ports.nats}`, cluster: { name: 'fw', listen: `0.0.0.0:${ports.routes}`, routes: [], routeSecret: 'route-secret', tls: { ca: 'ca.crt', cert: 'route.crt', key: 'route.key' } } }, firewall: { open } }));
  return loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_CONFIG: file, ZONE_LISTEN: `0.0.0.0:${ports.api}` } });
}

async function table(): Promise<string | null> {
  return execFileP('nft', ['list', 'table', 'inet', `zone-${NODE}`]).then((r) => r.stdout, () => null);
}

t.test('a container gets no answer from the node\'s ports on any host address, unless the config opens one', async (t) => {
  const ports = { api: await listenEverywhere(), nats: await listenEverywhere(), routes: await listenEverywhere() };
  await driver.ensure(spec);
  t.ok(hostAddresses().length >= 2, `the host has addresses to try: ${hostAddresses().join(', ')}`);
  const all = targetsOf([ports.api, ports.nats, ports.routes]);

  t.strictSame(opened(await reachableFrom(spec.id, all)), all, 'without the firewall every port answers on every address');

  const closed = await installWorkloadFirewall(NODE, configOf(ports, []));
  t.equal(closed.table, `zone-${NODE}`);
  const first = await table();
  await installWorkloadFirewall(NODE, configOf(ports, []));
  t.equal(await table(), first, 'installing again changes nothing');
  t.strictSame(opened(await reachableFrom(spec.id, all)), [], 'no port answers on any address');

  await installWorkloadFirewall(NODE, configOf(ports, ['api']));
  t.strictSame(opened(await reachableFrom(spec.id, all)), targetsOf([ports.api]), 'with the API opened, it answers, NATS does not');

  await closed.remove();
  t.equal(await table(), null, 'the table is gone');
  t.strictSame(opened(await reachableFrom(spec.id, all)), all, 'and nothing of it is left');
});

/** Runs the appliance (main.ts) on every address with `open`; `probe` gets its API and NATS ports; then SIGTERM. */
async function withAppliance(open: string[], probe: (ports: { api: number; nats: number }) => Promise<void>): Promise<{ code: number | null; node: string }> {
  const data = mkdtempSync(join(tmpdir(), 'zone-fw-node-'));
  const [nats] = (await freeLoopbackPorts(1)) as [number];
  writeFileSync(join(data, 'config.json'), JSON.stringify({ firewall: { open } }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../../api/main.ts')], {
    env: { ...process.env, ZONE_DATA_DIR: data, ZONE_LOG_LEVEL: 'warn', ZONE_LISTEN: '0.0.0.0:0', ZONE_NATS_LISTEN: `0.0.0.0:${nats}` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let node = '';
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const m = /^zone node ([a-z0-9]+) listening on http:\/\/[^ ]*:(\d+)/.exec(line);
      if (!m) continue;
      node = m[1]!;
      await probe({ api: Number(m[2]), nats });
      child.kill('SIGTERM');
    }
    return { code: await exited, node };
  } finally {
    child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
}

t.test('the appliance closes its own ports at start (a port 0 once bound), opens the API when its config says so, and takes its table away at stop', async (t) => {
  await driver.ensure(spec);
  for (const open of [[], ['api']]) {
    const { code, node } = await withAppliance(open, async ({ api, nats }) => {
      const answered = opened(await reachableFrom(spec.id, targetsOf([api, nats])));
      t.strictSame(answered, open.length > 0 ? targetsOf([api]) : [], `open ${JSON.stringify(open)}: ${answered.length} of ${targetsOf([api, nats]).length} answer`);
    });
    t.equal(code, 0, 'it stopped cleanly');
    t.notMatch(await execFileP('nft', ['list', 'tables']).then((r) => r.stdout), `zone-${node}`, 'its table went with it');
  }
});
