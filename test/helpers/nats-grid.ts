// Servers clustered on loopback in a test, and what they need to route to each other: one
// grid CA, a route password, and a CA-signed route certificate per server (all for 127.0.0.1).
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { NatsServer } from '../../appliance/pseudokernel/nats/nats-server.ts';
import type { NatsClusterOptions } from '../../appliance/pseudokernel/nats/server-config.ts';
import { makeGridCa, makeRouteCertificate, writeRoutePassword, type KeyAndCertificate } from '../../cli/cluster/pki.ts';
import { freeLoopbackPorts } from './ports.ts';

export interface LoopbackGrid {
  ca: KeyAndCertificate;
  routeSecretFile: string;
  /** The route credentials of server `name` (its certificate is made on first call). */
  routeFiles(name: string): Promise<Pick<NatsClusterOptions, 'tls' | 'routeSecretFile'>>;
}

/** A grid CA and route password in `dir` (which must exist). */
export async function loopbackGrid(dir: string): Promise<LoopbackGrid> {
  const ca = await makeGridCa(dir, 'test');
  const routeSecretFile = join(dir, 'route-secret');
  await writeRoutePassword(routeSecretFile);
  return {
    ca, routeSecretFile,
    async routeFiles(name) {
      const own = await makeRouteCertificate(ca, dir, name, ['127.0.0.1']);
      return { routeSecretFile, tls: { caFile: ca.certFile, certFile: own.certFile, keyFile: own.keyFile } };
    },
  };
}

/** Where startLoopbackCluster puts what it starts, as it starts it (so a teardown stops even half a cluster). */
export interface LoopbackCluster {
  servers: NatsServer[];
  connections: NatsConnection[];
}

/**
 * nats-servers named `names` clustered on loopback with TLS routes (data in `dir/NAME`),
 * started together (JetStream answers only once the cluster has elected its meta
 * leader), and a connection to each, in the order of `names`.
 */
export async function startLoopbackCluster(dir: string, names: readonly string[], cluster: string, logger: Logger, into: LoopbackCluster): Promise<void> {
  const ports = await freeLoopbackPorts(2 * names.length);
  const clusterPorts = ports.slice(names.length);
  const grid = await loopbackGrid(dir);
  for (const [i, name] of names.entries()) {
    into.servers.push(new NatsServer({
      dataDir: join(dir, name), serverName: name, host: '127.0.0.1', port: ports[i]!, logger, startTimeoutMs: 30_000,
      cluster: { name: cluster, host: '127.0.0.1', port: clusterPorts[i]!, routes: clusterPorts.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`), ...(await grid.routeFiles(name)) },
    }));
  }
  await Promise.all(into.servers.map((server) => server.start()));
  into.connections.push(...(await Promise.all(into.servers.map((server) => server.connect()))));
}
