// `npm start`: the node appliance process. Loads the config, the trust policy (made
// on first start), the drivers, starts the engine and the API; stops cleanly on
// SIGINT/SIGTERM (API, then engine, then store). Workloads keep running meanwhile.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createAppliance, type ZoneAppliance } from './appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy, type NodeConfig } from './config.ts';
import { buildDrivers } from './drivers.ts';
import { ZoneError } from './errors.ts';
import { createLogger } from './logger.ts';

interface Listening { url: string; close(): Promise<void> }

/** The HTTP API (api/server.ts) when it is in the tree; otherwise a listener that answers /healthz. */
async function listen(appliance: ZoneAppliance, config: NodeConfig): Promise<Listening> {
  const { host, port } = config.listen;
  const apiModule = new URL('../api/server.ts', import.meta.url);
  if (existsSync(apiModule)) {
    const { buildServer } = (await import(apiModule.href)) as {
      buildServer(appliance: ZoneAppliance, options: Record<string, unknown>): Promise<{ listen(o: { host: string; port: number }): Promise<string>; close(): Promise<void> }>;
    };
    const server = await buildServer(appliance, { logger: appliance.logger });
    const url = await server.listen({ host, port });
    return { url, close: () => server.close() };
  }
  const server: Server = createServer((req, res) => {
    const ok = req.url === '/healthz';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(ok ? { ok: true, node: appliance.identity.id } : { error: 'not found' }));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const address = server.address();
  const url = `http://${host}:${typeof address === 'object' && address ? address.port : port}`;
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function main(): Promise<void> {
  const config = loadNodeConfig();
  const logger = createLogger({ level: config.logLevel });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const appliance = await createAppliance({ config, trustPolicy: policy, drivers: buildDrivers, logger });
  appliance.start();
  const api = await listen(appliance, config);
  logger.info({ node: appliance.identity.id, url: api.url, dataDir: config.dataDir }, 'zone appliance listening');
  process.stdout.write(`zone node ${appliance.identity.id} listening on ${api.url} (data: ${config.dataDir})\n`);
  if (createdOperatorKey) {
    process.stdout.write(`first start: created operator key ${createdOperatorKey} and trust policy ${config.trustPolicyPath} trusting it; sign blueprints with that key\n`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    api.close()
      .then(() => appliance.close())
      .then(() => process.exit(0), (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  // A configuration mistake is a message, not a stack trace.
  process.stderr.write(err instanceof ZoneError ? `zone: ${err.message}\n` : `zone: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
