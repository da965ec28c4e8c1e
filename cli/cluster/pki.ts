// The grid's route credentials: a route password shared by the grid's nodes, and a PKI
// made with the openssl CLI: a CA per grid, and per node a certificate for its cluster
// address(es) that serves both ends of a route (server and client), signed by that CA.
// nats-server's routes accept only certificates of the CA. Keys are EC P-256; every
// secret is written 0600.
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../../lib/exec.ts';

export interface KeyAndCertificate {
  certFile: string;
  keyFile: string;
}

export const GRID_CA_FILE = 'ca.crt';
const CA_DAYS = '3650';
const NODE_DAYS = '825';
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A grid CA at DIR/ca.crt and DIR/ca.key. */
export async function makeGridCa(dir: string, grid: string): Promise<KeyAndCertificate> {
  const made = { certFile: join(dir, GRID_CA_FILE), keyFile: join(dir, 'ca.key') };
  await runCommand(['openssl', 'req', '-x509', ...NEW_KEY, '-keyout', made.keyFile, '-out', made.certFile, '-days', CA_DAYS,
    '-subj', `/O=Zone/CN=zone grid ${grid} route CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await chmod(made.keyFile, 0o600);
  return made;
}

/**
 * A route certificate for `name` at DIR/NAME.crt and DIR/NAME.key, valid for the IP
 * addresses the node's routes are dialled at; signed by `ca`, or by itself when `ca` is
 * null (what an outsider could make, for tests that it is refused).
 */
export async function makeRouteCertificate(ca: KeyAndCertificate | null, dir: string, name: string, ips: string[]): Promise<KeyAndCertificate> {
  const made = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  await runCommand(['openssl', 'req', '-x509', ...NEW_KEY, '-keyout', made.keyFile, '-out', made.certFile, '-days', NODE_DAYS,
    ...(ca ? ['-CA', ca.certFile, '-CAkey', ca.keyFile] : []),
    '-subj', `/O=Zone/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=serverAuth,clientAuth', '-addext', `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`]);
  await chmod(made.keyFile, 0o600);
  return made;
}

/** A new route password at `path` (256 bits, base64url: it travels inside route URLs). */
export async function writeRoutePassword(path: string): Promise<void> {
  await writeFile(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
}
