// `npm start`: the node appliance process. Loads the config, the trust policy (made
// on first start), the drivers, starts the engine and the API; stops cleanly on
// SIGINT/SIGTERM (API, then engine, then store). Workloads keep running meanwhile.
import { buildServer } from '../api/server.ts';
import { createAppliance } from './appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from './config.ts';
import { buildDrivers } from './drivers.ts';
import { ZoneError } from './errors.ts';
import { createLogger } from './logger.ts';

async function main(): Promise<void> {
  const config = loadNodeConfig();
  const logger = createLogger({ level: config.logLevel });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const appliance = await createAppliance({ config, trustPolicy: policy, drivers: buildDrivers, logger });
  appliance.start();
  const api = await buildServer(appliance, { logger });
  const url = await api.listen({ host: config.listen.host, port: config.listen.port }).catch((err: NodeJS.ErrnoException) => {
    throw new ZoneError('UNAVAILABLE', `cannot listen on ${config.listen.host}:${config.listen.port} (${err.code ?? err.message}); set $ZONE_LISTEN or "listen" in the config`);
  });
  logger.info({ node: appliance.identity.id, url, dataDir: config.dataDir }, 'zone appliance listening');
  process.stdout.write(`zone node ${appliance.identity.id} listening on ${url} (data: ${config.dataDir})\n`);
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
