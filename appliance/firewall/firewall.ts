// Installs and removes the node's firewall against its workloads (rules.ts) with `nft`,
// in the network namespace where Docker makes its bridges: dockerd's, which is the
// node's own on a plain host and the host's for the nodes of a local cluster (each in a
// namespace of its own, all sharing the host's dockerd).
import { lookup } from 'node:dns/promises';
import { readFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { inNamespace, runCommand } from '../../lib/exec.ts';
import { processRuns } from '../../lib/processes.ts';
import type { NodeConfig } from '../config.ts';
import { ZoneError } from '../../lib/errors.ts';
import { firewallRemovalScript, firewallScript, firewallTable, type Listener, type NodeService } from './rules.ts';

export interface FirewallSettings {
  /** dockerd's pid file: the rules go to that process's network namespace. */
  dockerPidFile?: string;
  /**
   * Where the API listens once bound, when that differs from `config.listen` (port 0 there:
   * any free port). Until then a port-0 address has no port to close.
   */
  apiListen?: { host: string; port: number }[];
}

export const DEFAULT_DOCKER_PID_FILE = '/var/run/docker.pid';

/** The installed table; remove() takes it away again. */
export interface WorkloadFirewall {
  table: string;
  /** The namespace the rules are in (`/proc/PID/ns/net`), null when it is this process's own. */
  namespace: string | null;
  remove(): Promise<void>;
}

/**
 * Closes the node's API and NATS ports (those `config.firewall.open` does not name) to
 * its workloads; replaces what an earlier start (or call) installed. Fails with UNAVAILABLE when
 * the rules cannot be installed: a node does not run workloads unprotected.
 */
export async function installWorkloadFirewall(node: string, config: NodeConfig, settings: FirewallSettings = {}): Promise<WorkloadFirewall> {
  const namespace = await dockerNamespace(settings.dockerPidFile ?? DEFAULT_DOCKER_PID_FILE);
  const listeners = await Promise.all([
    ...(settings.apiListen ?? config.listen).filter((l) => l.port !== 0).map((l) => listenerOf('api', l.host, l.port)),
    listenerOf('nats', config.nats.host, config.nats.port),
    ...(config.nats.cluster ? [listenerOf('nats-routes', config.nats.cluster.host, config.nats.cluster.port)] : []),
  ]);
  const script = firewallScript({ node, listeners, open: config.firewall.open, nodeAddresses: ownAddresses() });
  await runNft(namespace, script).catch((err: unknown) => {
    throw new ZoneError('UNAVAILABLE', `cannot install the firewall that keeps workloads from the node's ports: ${(err as Error).message} (is nftables installed? scripts/setup-host installs it)`);
  });
  return { table: firewallTable(node), namespace, remove: () => removeWorkloadFirewall(node, settings) };
}

/** Removes the node's table wherever dockerd runs; nothing happens when there is none. */
export async function removeWorkloadFirewall(node: string, settings: FirewallSettings = {}): Promise<void> {
  await runNft(await dockerNamespace(settings.dockerPidFile ?? DEFAULT_DOCKER_PID_FILE), firewallRemovalScript(node));
}

async function runNft(namespace: string | null, script: string): Promise<void> {
  await runCommand(inNamespace(namespace, ['nft', '-f', '-']), { input: script });
}

/**
 * dockerd's network namespace when it differs from ours; null (ours) when it is the
 * same, or dockerd does not run (it will make its bridges where it starts: here, on a
 * host whose appliance runs in the host's namespace).
 */
async function dockerNamespace(pidFile: string): Promise<string | null> {
  const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
  if (!Number.isInteger(pid) || pid <= 0 || !(await processRuns(pid))) return null;
  const theirs = `/proc/${pid}/ns/net`;
  const [a, b] = await Promise.all([readlink(theirs).catch(() => null), readlink('/proc/self/ns/net')]);
  return a === null || a === b ? null : theirs;
}

async function listenerOf(service: NodeService, host: string, port: number): Promise<Listener> {
  if (isIP(host) !== 0) return { service, addresses: [host], port };
  try {
    return { service, addresses: (await lookup(host, { all: true })).map((a) => a.address), port };
  } catch (err) {
    throw new ZoneError('UNAVAILABLE', `the ${service} listen host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'}): the firewall cannot close it to workloads`);
  }
}

/** The addresses of this process's network namespace. */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}
