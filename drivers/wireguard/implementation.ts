// Which WireGuard serves the node's networks, and what the userspace one needs from the
// host. The decisions are pure (the probe and the sysctl file are arguments) so they are
// tested on a machine without the kernel module too.
import { readFile, writeFile } from 'node:fs/promises';
import type { WireguardImplementation } from '../contract.ts';
import { runCommand } from '../../lib/exec.ts';

/** Makes a wireguard link in a throwaway network namespace: it works when the kernel has WireGuard (built in, or a module it can load). */
export const probeKernelWireguard = (): Promise<unknown> => runCommand(['unshare', '--net', 'ip', 'link', 'add', 'zwprobe', 'type', 'wireguard']);

/** The kernel's WireGuard wherever the probe succeeds (no process, no copies to userspace), else wireguard-go. */
export async function detectImplementation(probe: () => Promise<unknown> = probeKernelWireguard): Promise<WireguardImplementation> {
  return probe().then(() => 'kernel' as const, () => 'wireguard-go' as const);
}

/**
 * The receive buffer a UDP socket of wireguard-go should get. Debian 12's wireguard-go
 * (0.0.20220316) does not size its socket (later versions ask for 7 MiB), so it gets
 * net.core.rmem_default, 208 KiB: under a TCP stream that is about 90 datagrams, and
 * while the process waits for a CPU the kernel drops the rest (UdpRcvbufErrors), which
 * TCP inside pays for with retransmits. 4 MiB measured best (BENCHMARKS.md).
 */
export const WIREGUARD_GO_RECEIVE_BUFFER = 4 << 20;

/** The host's default receive buffer of new sockets; only the initial network namespace may change it. */
export const RECEIVE_BUFFER_DEFAULT = '/proc/sys/net/core/rmem_default';

/** The value to write so that new sockets get at least `wanted`; null when they already do (never lowers). */
export function raisedBuffer(current: number, wanted: number): number | null {
  return current < wanted ? wanted : null;
}

/**
 * Raises the host's default socket receive buffer to `wanted` for the wireguard-go
 * sockets made from now on. The setting is the whole machine's (no namespace has its
 * own), so it is only ever raised; it costs memory only while a socket holds unread data,
 * charged to the socket's cgroup. Returns the value in force.
 */
export async function raiseReceiveBufferDefault(wanted: number, path = RECEIVE_BUFFER_DEFAULT): Promise<number> {
  const current = Number((await readFile(path, 'utf8')).trim());
  if (!Number.isSafeInteger(current)) throw new Error(`${path} does not hold a number`);
  const raised = raisedBuffer(current, wanted);
  if (raised === null) return current;
  await writeFile(path, `${raised}\n`);
  return raised;
}
