// What servers clustered on loopback in a test need to route to each other: one grid CA,
// a route password, and a CA-signed route certificate per server (all for 127.0.0.1).
import { join } from 'node:path';
import type { NatsClusterOptions } from '../../appliance/pseudokernel/nats/server-config.ts';
import { makeGridCa, makeRouteCertificate, writeRoutePassword, type KeyAndCertificate } from '../../cli/cluster/pki.ts';

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
