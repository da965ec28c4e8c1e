// The nats-server supervisor against the real nats-server on loopback ports.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nkeys } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { natsServerConfig } from '../../../../appliance/pseudokernel/nats/server-config.ts';
import { NatsServer, type NatsServerOptions } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { loopbackGrid } from '../../../helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-nats-'));
const logs: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
const servers: NatsServer[] = [];
/** Processes this test started itself (not through a supervisor). */
const pids = new Set<number>();

t.teardown(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function supervised(name: string, options: Partial<NatsServerOptions> = {}): Promise<NatsServer> {
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const server = new NatsServer({ dataDir: join(dir, name), serverName: name, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000, ...options });
  servers.push(server);
  return server;
}

t.test('the config file: client address and NKEY, JetStream store, cluster routes with password and TLS; bad options are named', async (t) => {
  const clientNkey = nkeys.createUser().getPublicKey();
  const routePassword = 'a'.repeat(43);
  const tls = { caFile: '/grid/ca.crt', certFile: '/grid/n1.crt', keyFile: '/grid/n1.key' };
  const text = natsServerConfig({
    serverName: 'n1', host: '127.0.0.1', port: 4333, storeDir: '/data/store', pidFile: '/data/pid', clientNkey, routePassword,
    cluster: { name: 'grid', host: '10.88.0.1', port: 6333, routes: ['10.88.0.2:6333', '[fd00::3]:6333'], tls, routeSecretFile: '/grid/secret' },
  });
  t.match(text, /server_name: "n1"\nhost: "127\.0\.0\.1"\nport: 4333\n/);
  t.match(text, `authorization {\n  users: [ { nkey: "${clientNkey}" } ]\n}`, 'clients only as the node\'s NKEY user');
  t.match(text, /jetstream \{\n {2}store_dir: "\/data\/store"\n\}/);
  t.match(text, /cluster \{\n {2}name: "grid"\n {2}host: "10\.88\.0\.1"\n {2}port: 6333\n {2}no_advertise: true\n/);
  t.match(text, `  authorization {\n    user: "zone-route"\n    password: "${routePassword}"\n  }\n`, 'routes only with the grid\'s password');
  t.match(text, '  tls {\n    ca_file: "/grid/ca.crt"\n    cert_file: "/grid/n1.crt"\n    key_file: "/grid/n1.key"\n    verify: true\n', 'routes only with a certificate of the grid\'s CA');
  t.match(text, `  routes: [\n    "nats-route://zone-route:${routePassword}@10.88.0.2:6333"\n    "nats-route://zone-route:${routePassword}@[fd00::3]:6333"\n  ]`);
  t.notMatch(natsServerConfig({
    serverName: 'n1', host: '127.0.0.1', port: 4333, storeDir: '/s', pidFile: '/p', clientNkey, routePassword,
    cluster: { name: 'grid', host: '10.88.0.1', port: 6333, routes: [], tls: null, routeSecretFile: '/grid/secret' },
  }), 'tls {', 'plain routes (benchmarks) have no tls block');
  const base = { serverName: 'n1', host: '127.0.0.1', port: 4333, storeDir: '/s', pidFile: '/p', clientNkey };
  const cluster = { name: 'g', host: 'h', port: 1, routes: [], tls: null, routeSecretFile: '/grid/secret' };
  t.throws(() => natsServerConfig({ ...base, port: 0 }), /port is 0; expected an integer from 1 to 65535/);
  t.throws(() => natsServerConfig({ ...base, serverName: 'a b' }), /serverName is "a b"/);
  t.throws(() => natsServerConfig({ ...base, clientNkey: 'SUAB' }), /clientNkey is not a user NKEY/);
  t.throws(() => natsServerConfig({ ...base, routePassword, cluster: { ...cluster, routes: ['nohost'] } }), /cluster\.routes\[0\] is "nohost"; expected host:port/);
  const short = natsServerConfig.bind(null, { ...base, routePassword: 'short', cluster });
  t.throws(short, /the route password in \/grid\/secret \(cluster\.routeSecretFile\) is not 16 to 128/);
  t.throws(() => natsServerConfig({ ...base, cluster }), /route password/, 'a cluster needs the password');
  t.notMatch((() => { try { short(); return ''; } catch (e) { return (e as Error).message; } })(), 'short', 'the error does not show the password');
});

t.test('the config file bounds JetStream: max_file_store and max_memory_store in bytes; a bad bound is named', async (t) => {
  const base = { serverName: 'n1', host: '127.0.0.1', port: 4333, storeDir: '/s', pidFile: '/p', clientNkey: nkeys.createUser().getPublicKey() };
  t.match(natsServerConfig({ ...base, maxFileStoreBytes: 8 * 2 ** 30, maxMemoryStoreBytes: 2 ** 28 }), /jetstream \{\n {2}store_dir: "\/s"\n {2}max_file_store: 8589934592\n {2}max_memory_store: 268435456\n\}/);
  t.throws(() => natsServerConfig({ ...base, maxFileStoreBytes: 0 }), /max_file_store is 0; expected a positive number of bytes/);
});

t.test('start, KV through a client, kill -9 -> restarted with the data, stop leaves no process', async (t) => {
  const server = await supervised('solo');
  await server.start();
  const first = server.pid!;
  t.ok(alive(first), 'the server runs');
  const nc = await server.connect();
  const kv = await new Kvm(nc).create('probe', { replicas: 1 });
  await kv.put('greeting', 'hello');
  t.equal((await kv.get('greeting'))?.string(), 'hello');

  process.kill(first, 'SIGKILL');
  const second = await waitFor(() => server.pid !== null && server.pid !== first && server.pid, { timeoutMs: 10_000, what: 'a new nats-server PID' });
  t.notOk(alive(first), 'the killed server is gone');
  const restart = logs.find((line) => line.msg === 'nats-server exited unexpectedly; restarting it');
  t.match(restart, { pid: first, exit: 'signal SIGKILL', attempt: 1, restartInMs: 0 }, 'the restart is logged with why and when (the first at once)');
  const value = await waitFor(async () => (await kv.get('greeting'))?.string(), { timeoutMs: 15_000, what: 'the value through the reconnected client' });
  t.equal(value, 'hello', 'the data survived');
  await nc.close();

  await server.stop();
  t.notOk(alive(second), 'stop() ended the server');
  t.equal(server.pid, null);
});

t.test('a busy client port: start fails naming the log file and its last lines, leaving no process', async (t) => {
  // Whoever connects (the supervisor's readiness probe) is hung up on at once.
  const blocker = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => blocker.close(resolve)));
  const server = await supervised('busy', { port: (blocker.address() as { port: number }).port });
  const err = await server.start().then(() => null, (e: Error) => e);
  t.match(err?.message, /^nats-server busy at nats:\/\/127\.0\.0\.1:\d+ exited during start \(exit code 1\); its log is .*busy\/nats-server\.log, last lines:\n.*address already in use/s);
  t.equal(server.pid, null);
});

t.test('a missing binary: start fails saying so', async (t) => {
  const server = await supervised('nobinary', { binary: join(dir, 'no-such-nats-server') });
  await t.rejects(server.start(), /exited during start \(could not be started: spawn .*no-such-nats-server ENOENT\)/);
});

t.test('a server left running by a previous appliance process is replaced', async (t) => {
  const server = await supervised('leftover');
  // A first run writes the config; the "previous process" then starts the server itself and dies.
  await server.start();
  await server.stop();
  const orphan = spawn('nats-server', ['-c', server.configPath], { stdio: 'ignore' });
  pids.add(orphan.pid!);
  const orphanExited = new Promise((resolve) => orphan.once('exit', resolve));
  await waitFor(() => existsSync(server.pidPath) && readFileSync(server.pidPath, 'utf8').trim() === String(orphan.pid), { timeoutMs: 10_000, what: 'the orphan writing its pid file' });
  await server.start();
  await orphanExited;
  pids.delete(orphan.pid!);
  t.not(server.pid, orphan.pid);
  t.ok(logs.some((line) => line.msg === 'a nats-server left by a previous appliance process is running; stopping it' && line.pid === orphan.pid));
  await server.stop();
});

t.test('in a cluster, quorumMayFollow: a server started before its peers takes clients, and its JetStream answers once they are up', async (t) => {
  const grid = await loopbackGrid(mkdtempSync(join(dir, 'grid-')));
  const clusterPorts = await freeLoopbackPorts(3);
  const member = async (name: string, i: number, options: Partial<NatsServerOptions>) => supervised(name, {
    cluster: { name: 'quorum', host: '127.0.0.1', port: clusterPorts[i]!, routes: clusterPorts.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`), ...(await grid.routeFiles(name)) },
    ...options,
  });
  const strict = await member('q0', 0, { startTimeoutMs: 2000 });
  await t.rejects(strict.start(), /did not answer with JetStream within 2000 ms/, 'without it, a start alone fails');
  t.equal(strict.pid, null, 'and leaves no server');

  const first = await member('q0', 0, { startTimeoutMs: 2000, quorumMayFollow: true });
  await first.start();
  t.ok(first.pid, 'with it, the server runs alone');
  t.ok(logs.some((line) => line.level === 40 && /no quorum of the cluster yet/.test(String(line.msg)) && line.server === 'q0'), 'and says why JetStream does not answer yet');
  const nc = await first.connect();
  t.teardown(() => nc.close());
  await t.rejects((async () => (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo())(), 'no JetStream without a quorum');
  const peers = [await member('q1', 1, { startTimeoutMs: 30_000 }), await member('q2', 2, { startTimeoutMs: 30_000 })];
  await Promise.all(peers.map((peer) => peer.start()));
  const account = await waitFor(async () => (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo(), { timeoutMs: 30_000, what: 'JetStream through the first server\'s connection' });
  t.ok(account, 'its JetStream answers through the connection made before the quorum');
});
