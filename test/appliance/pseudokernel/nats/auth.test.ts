// Who the node's real nats-server takes: clients only with the node's NKEY (made on first
// start, 0600), routes only with the grid's password and a certificate of the grid's CA.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, nkeyAuthenticator, nkeys, usernamePasswordAuthenticator } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsServer, type NatsServerOptions } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { makeRouteCertificate, writeRoutePassword } from '../../../../cli/cluster/pki.ts';
import { loopbackGrid } from '../../../helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-nats-auth-'));
const logger = createLogger({ level: 'silent' });
const servers: NatsServer[] = [];

t.teardown(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function supervised(name: string, options: Partial<NatsServerOptions> = {}): Promise<NatsServer> {
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const server = new NatsServer({ dataDir: join(dir, name), serverName: name, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000, ...options });
  servers.push(server);
  return server;
}

/** What a server answers a bare `CONNECT` and `PING` on `port` (until it hangs up or 3 s passed). */
function bareSession(port: number): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write('CONNECT {"verbose":false}\r\nPING\r\n'));
    const done = () => { socket.destroy(); resolve(answer); };
    socket.setTimeout(3000, done);
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1'); });
    socket.on('close', done);
    socket.on('error', done);
  });
}

const pem = (files: { certFile: string; keyFile: string }) => ({ cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) });

/**
 * A TLS handshake on the route port `port` (the server speaks TLS first there) with
 * `credentials`: 'tls accepted' when the server then answers anything, else what ended it.
 */
function routeHandshake(port: number, credentials: { cert?: Buffer; key?: Buffer; ca: Buffer }): Promise<string> {
  return new Promise((resolve) => {
    const secure = tlsConnect({ port, host: '127.0.0.1', ...credentials, checkServerIdentity: () => undefined }, () => secure.write('PING\r\n'));
    secure.setTimeout(5000, () => { secure.destroy(); resolve('timeout'); });
    // TLS 1.3: the server checks the client's certificate after the client's handshake is done.
    secure.once('data', () => { secure.destroy(); resolve('tls accepted'); });
    secure.once('error', (e) => { secure.destroy(); resolve(e.message); });
    secure.once('close', () => resolve('closed'));
  });
}

t.test('clients: the node\'s own NKEY connects; none, a wrong key or a password is refused; the key file is 0600 and kept', async (t) => {
  const server = await supervised('solo');
  await server.start();
  t.equal(statSync(server.credentialsPath).mode & 0o777, 0o600, 'the client key file is 0600');
  const seed = readFileSync(server.credentialsPath, 'utf8');
  const nc = await server.connect();
  t.equal(nc.info?.server_name, 'solo', 'the appliance\'s connection signs in');
  await nc.close();

  const url = server.url;
  const refusedWith = (options: Parameters<typeof connect>[0]) => connect({ servers: url, reconnect: false, timeout: 3000, ...options }).then(async (c) => { await c.close(); return 'connected'; }, (e: Error) => e.message);
  t.match(await refusedWith({}), /Authorization Violation/, 'a client without credentials is refused');
  t.match(await refusedWith({ authenticator: nkeyAuthenticator(nkeys.createUser().getSeed()) }), /Authorization Violation/, 'another NKEY is refused');
  t.match(await refusedWith({ authenticator: usernamePasswordAuthenticator('zone-route', 'guess') }), /Authorization Violation/, 'a user and password are refused');
  const bare = await bareSession(Number(new URL(url).port));
  t.notMatch(bare, /PONG/, 'a bare CONNECT gets no session');
  t.match(bare, /-ERR 'Authorization Violation'/, 'but an authorization error');

  await server.stop();
  await server.start();
  t.equal(readFileSync(server.credentialsPath, 'utf8'), seed, 'a restart keeps the key');
  await (await server.connect()).close();
  await server.stop();
  chmodSync(server.credentialsPath, 0o644);
  await t.rejects(server.start(), new RegExp(`${server.credentialsPath} \\(NATS client key\\) is readable by others \\(mode 644\\)`), 'a key file others may read is refused');
  writeFileSync(server.credentialsPath, 'not a seed', { mode: 0o600 });
  chmodSync(server.credentialsPath, 0o600);
  await t.rejects(server.start(), /not a NATS user NKEY seed/);
});

t.test('routes: servers with certificates of the grid\'s CA and its password cluster; a self-made certificate or a wrong password is refused', async (t) => {
  const grid = await loopbackGrid(dir);
  const ports = await freeLoopbackPorts(4);
  const [a, b, c, d] = ports as [number, number, number, number];
  const member = async (name: string, port: number, routes: number[], files: Awaited<ReturnType<typeof grid.routeFiles>>, startTimeoutMs = 20_000) =>
    supervised(name, { startTimeoutMs, cluster: { name: 'grid', host: '127.0.0.1', port, routes: routes.map((p) => `127.0.0.1:${p}`), ...files } });
  const first = await member('ra', a, [b], await grid.routeFiles('ra'));
  const second = await member('rb', b, [a], await grid.routeFiles('rb'));
  // JetStream answers only once both servers routed to each other and elected a meta leader.
  await Promise.all([first.start(), second.start()]);
  const [na, nb] = await Promise.all([first.connect(), second.connect()]);
  t.teardown(() => Promise.all([na.close(), nb.close()]));
  let received: string | null = null;
  nb.subscribe('probe', { max: 1, callback: (_err, m) => { received = m.string(); } });
  await nb.flush();
  // rb's interest reaches ra over the route a moment later: publish until it arrives.
  const crossed = await waitFor(async () => { na.publish('probe', 'over the route'); await na.flush(); return received; }, { timeoutMs: 10_000, what: 'a message from ra at rb' });
  t.equal(crossed, 'over the route', 'a message crosses the TLS route');
  const password = readFileSync(grid.routeSecretFile, 'utf8').trim();
  t.notMatch(readFileSync(first.logPath, 'utf8'), password, 'the route password is not in the server\'s log');

  // Who knows the grid's CA certificate (public) but holds no key it signed.
  const selfMade = await makeRouteCertificate(null, dir, 'outsider', ['127.0.0.1']);
  const outsider = await member('rc', c, [a], { routeSecretFile: grid.routeSecretFile, tls: { caFile: grid.ca.certFile, certFile: selfMade.certFile, keyFile: selfMade.keyFile } }, 4000);
  await t.rejects(outsider.start(), /did not answer with JetStream/, 'a server with a self-made certificate joins no cluster');
  await waitFor(() => /TLS route handshake error: tls: client didn't provide a certificate/.test(readFileSync(first.logPath, 'utf8')), { timeoutMs: 10_000, what: 'ra refusing the self-made certificate' });
  // Go's TLS client offers only a certificate of a CA the server asks for: present the self-made one anyway.
  const ca = readFileSync(grid.ca.certFile);
  t.match(await routeHandshake(a, { ...pem(selfMade), ca }), /alert bad certificate/, 'a self-made certificate presented is refused in the handshake');
  t.equal(await routeHandshake(a, { ...pem(await makeRouteCertificate(grid.ca, dir, 'member', ['127.0.0.1'])), ca }), 'tls accepted', 'a certificate of the grid\'s CA passes the handshake');
  t.match(await routeHandshake(a, { ca }), /alert bad certificate/, 'no certificate is refused');

  const wrongSecret = join(dir, 'wrong-secret');
  await writeRoutePassword(wrongSecret);
  const guesser = await member('rd', d, [a], { ...(await grid.routeFiles('rd')), routeSecretFile: wrongSecret }, 4000);
  await t.rejects(guesser.start(), /did not answer with JetStream/, 'a CA-signed server with a wrong password joins no cluster');
  await waitFor(() => /rid:\d+ - authentication error/.test(readFileSync(first.logPath, 'utf8')), { timeoutMs: 10_000, what: 'ra refusing the wrong route password' });
  t.pass('the grid\'s server refused the wrong route password');

  const bare = await bareSession(a);
  t.notMatch(bare, /PONG/, 'a bare CONNECT on the route port gets no session');

  const loose = join(dir, 'loose-secret');
  writeFileSync(loose, readFileSync(grid.routeSecretFile), { mode: 0o644 });
  chmodSync(loose, 0o644);
  const careless = await member('re', c, [a], { ...(await grid.routeFiles('re')), routeSecretFile: loose });
  await t.rejects(careless.start(), new RegExp(`${loose} \\(NATS route password\\) is readable by others \\(mode 644\\)`), 'a route password others may read is refused');
  t.equal(careless.pid, null, 'and no server started');
});
