// The appliance owns the pseudokernel: its nats-server runs (at the configured address)
// while the appliance does and stops with it; without nats-server the appliance still
// starts and GET /v1/node says why the pseudokernel is unavailable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import pino from 'pino';
import t, { type Test } from 'tap';
import { createAppliance, type ApplianceOptions } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { NatsServer } from '../../../appliance/pseudokernel/nats-server.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';

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
  const nc = await connect({ servers: `127.0.0.1:${o.config.nats.port}` });
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

t.test('an appliance not asked for the pseudokernel shows none', async (t) => {
  const appliance = await createAppliance(await options(t, undefined));
  t.teardown(() => appliance.close());
  t.equal(appliance.pseudokernel, null);
  t.notOk((await appliance.nodeInfo()).drivers.some((d) => d.kind === 'pseudokernel'));
});
