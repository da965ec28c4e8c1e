// `npm start`: the node appliance process. Loads the config, the trust policy (made
// on first start), installs the firewall that keeps workloads from the node's ports,
// the drivers, starts the pseudokernel (nats-server; the node runs without it when it
// cannot start), the engine and the API; stops cleanly on SIGINT/SIGTERM (API, then
// engine, then pseudokernel, then store, then the firewall: nothing listens any more).
// Workloads keep running meanwhile. Under the supervisor (appliance/supervisor/), it
// reports its health once its first full pass is done, and stops when the supervisor goes.
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { serverTimeouts } from './body-deadline.ts';
import { buildServer, REQUEST_TIMEOUT_MS } from './server.ts';
import { createAppliance } from '../appliance/appliance.ts';
import { DATA_DIR_MODE, loadNodeConfig, loadOrCreateTrustPolicy } from '../appliance/config.ts';
import { buildDrivers, buildNetworkDriver, buildVolumeProvider } from '../appliance/drivers.ts';
import { ZoneError } from '../lib/errors.ts';
import { installWorkloadFirewall } from '../appliance/firewall/firewall.ts';
import { loadOrCreateIdentity } from '../appliance/identity.ts';
import { createLogger } from '../appliance/logger.ts';
import { readProtection } from '../appliance/read-protection.ts';
import { reportToSupervisor, supervisorLink } from '../appliance/supervisor/child.ts';

/** The longest a stop may take before the process exits regardless. */
const STOP_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const config = loadNodeConfig();
  const logger = createLogger({ level: config.logLevel });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  // Before anything listens or any workload is adopted.
  mkdirSync(config.dataDir, { recursive: true, mode: DATA_DIR_MODE });
  const node = loadOrCreateIdentity(config.dataDir).id;
  let firewall = await installWorkloadFirewall(node, config);
  const appliance = await createAppliance({ config, trustPolicy: policy, drivers: buildDrivers, networks: buildNetworkDriver, volumes: buildVolumeProvider, pseudokernel: {}, logger, supervisor: supervisorLink() });
  appliance.start();
  const reads = readProtection(config, policy);
  const api = await buildServer(appliance, {
    logger, streams: { events: config.limits.eventStreams, logFollows: config.limits.logFollows }, gridFileBytes: Math.min(config.limits.gridFileBytes, config.limits.ownerBytes),
    ...(reads.options ? { readToken: reads.options } : {}),
  });
  const { urls, extra } = await listenAll(api, config.listen);
  // A port 0 became a port: closed from now on.
  if (config.listen.some((l) => l.port === 0)) {
    firewall = await installWorkloadFirewall(node, config, { apiListen: config.listen.map((l, i) => ({ host: l.host, port: Number(new URL(urls[i] ?? '').port) })) });
  }
  logger.info({ node: appliance.identity.id, urls, dataDir: config.dataDir, readTokens: reads.options !== null, firewall: { table: firewall.table, namespace: firewall.namespace, open: config.firewall.open } }, 'zone appliance listening');
  process.stdout.write(`zone node ${appliance.identity.id} listening on ${urls.join(', ')} (data: ${config.dataDir})\n`);
  if (reads.defaulted) process.stdout.write(`${reads.summary}\n`);
  if (createdOperatorKey) {
    process.stdout.write(`first start: created operator key ${createdOperatorKey} and trust policy ${config.trustPolicyPath} trusting it; sign blueprints with that key\n`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // Whatever hangs (an engine, a mount), the process ends: workloads keep running anyway.
    setTimeout(() => {
      logger.error({ signal, timeoutMs: STOP_TIMEOUT_MS }, 'stop did not finish in time; exiting');
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    // fastify ends the open streams (on every address) before its own listener closes;
    // the other listeners then drop what is left of their connections.
    api.close()
      .then(() => Promise.all(extra.map((server) => closeServer(server))))
      .then(() => appliance.close())
      .then(() => firewall.remove())
      .then(() => process.exit(0), (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  // Under a supervisor (npm run supervise): its health gate waits for this report.
  reportToSupervisor(() => appliance.startupHealth(urls[0]!), stop);
}

/** Stops listening and drops the connections left (idle keep-alives, requests in flight). */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/**
 * Listens on every configured address: fastify binds the first; each other one is a
 * plain node:http server handing its requests to the same fastify router, so hooks,
 * limits and schemas are the same on all of them.
 */
async function listenAll(api: FastifyInstance, addresses: { host: string; port: number }[]): Promise<{ urls: string[]; extra: Server[] }> {
  const refused = ({ host, port }: { host: string; port: number }) => (err: NodeJS.ErrnoException) => {
    throw new ZoneError('UNAVAILABLE', `cannot listen on ${host}:${port} (${err.code ?? err.message}); set $ZONE_LISTEN or "listen" in the config`);
  };
  const [first, ...rest] = addresses as [{ host: string; port: number }, ...{ host: string; port: number }[]];
  const urls = [await api.listen(first).catch(refused(first))];
  const extra: Server[] = [];
  for (const address of rest) {
    const server = createServer(serverTimeouts(REQUEST_TIMEOUT_MS), (req, res) => api.routing(req, res));
    extra.push(server);
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(address.port, address.host, resolve)).catch(refused(address));
    const { port } = server.address() as { port: number };
    urls.push(`http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${port}`);
  }
  return { urls, extra };
}

main().catch((err: unknown) => {
  // A configuration mistake is a message, not a stack trace.
  process.stderr.write(err instanceof ZoneError ? `zone: ${err.message}\n` : `zone: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
