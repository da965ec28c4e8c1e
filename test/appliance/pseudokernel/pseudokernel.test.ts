// The appliance owns the pseudokernel: its nats-server runs (at the configured address)
// while the appliance does and stops with it; without nats-server the appliance still
// starts and GET /v1/node says why the pseudokernel is unavailable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { createAppliance, type ApplianceOptions } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { NatsServer } from '../../../appliance/pseudokernel/nats/nats-server.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

async function options(t: Test, pseudokernel: ApplianceOptions['pseudokernel']): Promise<ApplianceOptions> {
  const dir = mkdtempSync(join(tmpdir(), 'zone-appliance-pk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${port}` }, cwd: dir });
  return {
    config, trustPolicy: loadOrCreateTrustPolicy(config).policy, logger: pino({ level: 'silent' }),
    drivers: () => [new FakeDriver()], hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB }, pseudokernel,
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('the pseudokernel\'s nats-server runs at the configured address while the appliance does', async (t) => {
  const o = await options(t, {});
  const appliance = await createAppliance(o);
  t.teardown(() => appliance.close());
  appliance.start();
  const info = (await appliance.nodeInfo()).drivers.find((d) => d.kind === 'pseudokernel');
  t.match(info, { available: true, details: { nats: `nats://127.0.0.1:${o.config.nats.port}` } });
  const pid = appliance.pseudokernel!.server.pid!;
  t.ok(alive(pid), 'nats-server runs');
  const nc = await appliance.pseudokernel!.server.connect();
  t.equal(nc.getServer(), `127.0.0.1:${o.config.nats.port}`, 'the appliance\'s client connects there with the node\'s key');
  await nc.close();
  t.ok(o.config.dataDir && appliance.pseudokernel!.server.configPath.startsWith(join(o.config.dataDir, 'nats')), 'its files are in DATA/nats');
  await appliance.close();
  t.notOk(alive(pid), 'close() stopped it');
});

t.test('without nats-server the appliance starts and says why the pseudokernel is unavailable', async (t) => {
  const appliance = await createAppliance(await options(t, { binary: '/nonexistent/nats-server' }));
  t.teardown(() => appliance.close());
  appliance.start();
  const info = (await appliance.nodeInfo()).drivers.find((d) => d.kind === 'pseudokernel');
  t.match(info, { available: false, reason: /could not be started: spawn \/nonexistent\/nats-server ENOENT/ });
  t.ok((await appliance.nodeInfo()).drivers.some((d) => d.kind === 'container' && d.available), 'the workload drivers are unaffected');
});

t.test('a nats.listen port another node\'s server holds leaves the pseudokernel unavailable, and that server alone', async (t) => {
  const o = await options(t, { startTimeoutMs: 5000 });
  const foreign = new NatsServer({ dataDir: join(o.config.dataDir, 'foreign'), serverName: 'foreign', host: '127.0.0.1', port: o.config.nats.port, logger: pino({ level: 'silent' }) });
  await foreign.start();
  t.teardown(() => foreign.stop());
  const appliance = await createAppliance(o);
  t.teardown(() => appliance.close());
  const info = (await appliance.nodeInfo()).drivers.find((d) => d.kind === 'pseudokernel');
  t.comment(`reason: ${info?.reason?.split('\n')[0]}`);
  // Which of the two is seen first depends on how fast our server exits: both say so.
  t.match(info, { available: false, reason: /answered by another nats-server \(foreign\)|exited during start/ });
  t.equal(appliance.pseudokernel!.server.pid, null, 'no server of ours is left running');
  t.ok(alive(foreign.pid!), 'the other server still runs');
});

t.test('at start, this node\'s rows of workloads it no longer has are dropped from the process table; other nodes\' rows stay', async (t) => {
  const o = await options(t, {});
  const operator = readSigningKey(join(o.config.dataDir, 'operator.key'));
  let appliance = await createAppliance(o);
  appliance.start();
  const node = appliance.identity.id;
  await appliance.submit(signBlueprint({ owner: operator.publicKey, node, name: 'kept', version: 1, workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox' }] } as Blueprint, operator.secretKey));
  const table = () => appliance.pseudokernel!.procTable(operator.publicKey);
  await waitFor(async () => (await (await table()).list()).some((r) => r.workload === 'web' && r.state === 'running'), { timeoutMs: 20_000, what: 'web\'s row' });
  const stray = { kind: 'container', state: 'running', restarts: 0, since: new Date().toISOString() };
  await (await table()).publish({ ...stray, node, blueprint: 'gone', workload: 'left' });
  await (await table()).publish({ ...stray, node: 'othernode', blueprint: 'theirs', workload: 'web' });
  await appliance.close();

  appliance = await createAppliance(o);
  t.teardown(() => appliance.close());
  await waitFor(async () => !(await (await table()).list()).some((r) => r.blueprint === 'gone'), { timeoutMs: 20_000, what: 'the stale row dropped' });
  const rows = (await (await table()).list()).map((r) => `${r.node === node ? 'this node' : r.node}/${r.blueprint}/${r.workload}`);
  t.same(rows.sort(), ['othernode/theirs/web', 'this node/kept/web']);
  await appliance.close();
});

t.test('an appliance not asked for the pseudokernel shows none', async (t) => {
  const appliance = await createAppliance(await options(t, undefined));
  t.teardown(() => appliance.close());
  t.equal(appliance.pseudokernel, null);
  t.notOk((await appliance.nodeInfo()).drivers.some((d) => d.kind === 'pseudokernel'));
});
