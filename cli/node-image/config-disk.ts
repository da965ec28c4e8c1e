// The config disk a node image configures itself from (the guest's sysinit,
// cli/node-image/guest/sysinit, reads it at every boot). Format, version 1:
//
//   a vfat file system labelled ZONECFG (any disk of the VM; `zone cluster up --vm`
//   attaches it as the second virtio disk), holding:
//
//   network.conf   `key=value` lines, `#` comments; every key optional:
//                    address=10.213.0.11/24   the first NIC's IPv4 address and prefix
//                    gateway=10.213.0.1       the default route
//                    hostname=zone-n1
//                  read at every boot (a changed address applies on the next one).
//   data/          copied into the node's data directory (/var/lib/zone) on the first
//                  boot, files 0600; a file the node already has is never overwritten,
//                  so a reboot keeps the node's identity and store. What Zone reads there:
//                    config.json        the appliance's configuration (README,
//                                       Configuration): `listen` (the API address, e.g.
//                                       "10.213.0.11:7700"), `nats` (routes and their
//                                       credentials), ...; relative paths are relative
//                                       to the data directory
//                    trust-policy.json  the trust policy (config.json's default `trustPolicy`)
//                    node.key, box.key  the node's identity (optional: without them the
//                                       node makes its own on its first start)
//                    any other file config.json names (route certificates, secrets)
//
// Without a config disk the node starts on loopback only, with a trust policy and an
// operator key of its own making (as `npm start` does). The disk holds the node's secret
// keys: keep its file as private as the node's data directory (0600).
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import ipaddr from 'ipaddr.js';
import { runCommand } from '../../lib/exec.ts';

export const CONFIG_DISK_LABEL = 'ZONECFG';
/** Size of the vfat file system, KiB: certificates and keys are a few KiB each. */
const DISK_KIB = 2048;
const DATA_PATH = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}(\/[A-Za-z0-9_][A-Za-z0-9._-]{0,63}){0,3}$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface NodeNetwork {
  /** IPv4 address with its prefix length, e.g. 10.213.0.11/24. */
  address: string;
  gateway?: string;
  hostname?: string;
}

export interface ConfigDisk {
  network?: NodeNetwork;
  /** Files of the node's data directory, by their path in it. */
  data: Record<string, string | Buffer>;
}

export class ConfigDiskError extends Error {
  constructor(readonly field: string, message: string) {
    super(`config disk: ${field}: ${message}`);
    this.name = 'ConfigDiskError';
  }
}

/** network.conf's text; throws naming the field that is wrong. */
export function networkConf(network: NodeNetwork): string {
  const [ip, prefix, ...rest] = network.address.split('/');
  if (!ip || !prefix || rest.length || !ipaddr.IPv4.isValidFourPartDecimal(ip) || !/^[0-9]{1,2}$/.test(prefix) || Number(prefix) > 32) {
    throw new ConfigDiskError('network.address', `"${network.address}" is not an IPv4 address with a prefix length (e.g. 10.213.0.11/24)`);
  }
  const lines = [`address=${network.address}`];
  if (network.gateway !== undefined) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(network.gateway)) throw new ConfigDiskError('network.gateway', `"${network.gateway}" is not an IPv4 address`);
    lines.push(`gateway=${network.gateway}`);
  }
  if (network.hostname !== undefined) {
    if (!HOSTNAME.test(network.hostname)) throw new ConfigDiskError('network.hostname', `"${network.hostname}" is not a host name (a-z, 0-9, -; at most 63)`);
    lines.push(`hostname=${network.hostname}`);
  }
  return lines.join('\n') + '\n';
}

/** Checks a data file's path: relative, plain names, no `..`. */
export function checkDataPath(path: string): void {
  if (!DATA_PATH.test(path) || path.split('/').some((p) => p === '.' || p === '..')) {
    throw new ConfigDiskError(`data/${path}`, 'a data file\'s path is 1-4 names of letters, digits, ".", "_" and "-", below the data directory');
  }
}

/** Writes the config disk (a vfat image file, 0600) at `path`, made with mkfs.vfat and mtools: nothing is mounted. */
export async function writeConfigDisk(path: string, disk: ConfigDisk): Promise<void> {
  const paths = Object.keys(disk.data).sort();
  paths.forEach(checkDataPath);
  const conf = disk.network ? networkConf(disk.network) : '';
  const stage = await mkdtemp(join(tmpdir(), 'zone-cfg-'));
  try {
    await rm(path, { force: true });
    await runCommand(['mkfs.vfat', '-n', CONFIG_DISK_LABEL, '--invariant', '-C', path, String(DISK_KIB)]);
    await chmod(path, 0o600);
    const mtools = (tool: string, ...args: string[]) => runCommand(['env', 'MTOOLS_SKIP_CHECK=1', tool, '-i', path, ...args]);
    const put = async (name: string, bytes: string | Buffer, to: string) => {
      const file = join(stage, name);
      await writeFile(file, bytes, { mode: 0o600 });
      await mtools('mcopy', '-o', file, `::${to}`);
    };
    await put('network.conf', conf, 'network.conf');
    await mtools('mmd', '::data');
    const dirs = new Set<string>();
    for (const p of paths) {
      for (let d = dirname(p); d !== '.' && !dirs.has(d); d = dirname(d)) dirs.add(d);
    }
    for (const d of [...dirs].sort((a, b) => a.length - b.length)) await mtools('mmd', `::data/${d}`);
    for (const [i, p] of paths.entries()) await put(`f${i}`, disk.data[p]!, `data/${p}`);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
