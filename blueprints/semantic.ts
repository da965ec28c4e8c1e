// Cross-field rules of a schema-valid blueprint: names unique, references resolve,
// addresses inside their subnets, a tombstone carries nothing to run, sealed values
// in the current (bound) format.
import { SEALED_PATTERN, type Blueprint } from './schema.ts';
import { isUnboundSealed } from './seal.ts';
import { parseSize } from './units.ts';
import { sealedFields } from './sealed-fields.ts';
import type { Problem } from './validate.ts';

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

interface Cidr { base: number; size: number }

function parseCidr(cidr: string): Cidr {
  const [ip = '', bits = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return { base: ipv4ToInt(ip) - (ipv4ToInt(ip) % size), size };
}

const contains = (outer: Cidr, inner: Cidr) => inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;

/** Names that occur more than once in `items`, each with the index of its repeat. */
function duplicates(names: string[], path: string, what: string): Problem[] {
  return names.flatMap((name, i) => (names.indexOf(name) < i ? [{ field: `${path}/${i}/name`, message: `${what} "${name}" is declared twice` }] : []));
}

export function semanticProblems(bp: Blueprint): Problem[] {
  const problems: Problem[] = [];
  const networks = bp.networks ?? [];
  const workloads = bp.workloads ?? [];
  const pipes = bp.pipes ?? [];

  if (bp.delete) {
    for (const key of ['workloads', 'networks', 'pipes', 'volumes'] as const) {
      if ((bp[key] ?? []).length) problems.push({ field: `/${key}`, message: `a tombstone (delete: true) has no ${key}` });
    }
  }
  problems.push(...duplicates(networks.map((n) => n.name), '/networks', 'network'));
  problems.push(...duplicates(workloads.map((w) => w.name), '/workloads', 'workload'));
  problems.push(...volumeProblems(bp));

  const subnets = new Map<string, Cidr>();
  const listenPorts = new Map<number, string>();
  networks.forEach((n, i) => {
    const subnet = parseCidr(n.subnet);
    subnets.set(n.name, subnet);
    if (n.ipRange && !contains(parseCidr(n.ipRange), subnet)) {
      problems.push({ field: `/networks/${i}/subnet`, message: `subnet ${n.subnet} is not inside ipRange ${n.ipRange}` });
    }
    const port = n.wireguard?.listenPort;
    if (port !== undefined) {
      const other = listenPorts.get(port);
      if (other) problems.push({ field: `/networks/${i}/wireguard/listenPort`, message: `listen port ${port} is also used by network ${other}` });
      listenPorts.set(port, n.name);
    }
  });

  const usedIps = new Map<string, string>();
  const hostPorts = new Map<string, string>();
  workloads.forEach((w, i) => {
    (w.networks ?? []).forEach((a, j) => {
      const field = `/workloads/${i}/networks/${j}`;
      const subnet = subnets.get(a.name);
      if (!subnet) {
        problems.push({ field: `${field}/name`, message: `network "${a.name}" is not declared in networks (declared: ${[...subnets.keys()].join(', ') || 'none'})` });
        return;
      }
      const ip = ipv4ToInt(a.ip);
      const lastHost = subnet.size > 2 ? subnet.base + subnet.size - 2 : subnet.base + subnet.size - 1;
      const firstHost = subnet.size > 2 ? subnet.base + 1 : subnet.base;
      if (ip < firstHost || ip > lastHost) {
        problems.push({ field: `${field}/ip`, message: `${a.ip} is not a host address of network ${a.name} (subnet ${networks.find((n) => n.name === a.name)?.subnet})` });
      }
      const key = `${a.name}/${a.ip}`;
      const other = usedIps.get(key);
      if (other) problems.push({ field: `${field}/ip`, message: `${a.ip} on network ${a.name} is also given to workload ${other}` });
      usedIps.set(key, w.name);
    });
    (w.ports ?? []).forEach((p, j) => {
      const key = `${p.protocol ?? 'tcp'}/${p.host}`;
      const other = hostPorts.get(key);
      if (other) problems.push({ field: `/workloads/${i}/ports/${j}/host`, message: `host port ${key} is also published by workload ${other}` });
      hostPorts.set(key, w.name);
    });
  });

  const names = new Set(workloads.map((w) => w.name));
  // One pipe per stdout and per stdin, as in a shell; a pipe declared twice is still one pipe.
  const joinedBy = new Map<string, string>();
  pipes.forEach((p, i) => {
    const pipe = `${p.from} -> ${p.to}`;
    const ends = [['from', p.from, 'stdout'], ['to', p.to, 'stdin']] as const;
    let local = 0;
    for (const [key, end, stream] of ends) {
      const field = `/pipes/${i}/${key}`;
      const remote = end.includes('/');
      const [workload = '', endStream] = end.slice(end.lastIndexOf('/') + 1).split('.');
      if (endStream !== stream) problems.push({ field, message: `a pipe's ${key} end is a workload's ${stream} (WORKLOAD.${stream})` });
      // A remote end's own blueprint says what joins it.
      if (!remote) {
        local++;
        if (!names.has(workload)) problems.push({ field, message: `workload "${workload}" is not declared in this blueprint` });
        const other = joinedBy.get(end);
        if (other === undefined) joinedBy.set(end, pipe);
        else if (other !== pipe) problems.push({ field, message: `${end} is already joined by the pipe ${other} (one pipe per stdout and per stdin)` });
      }
    }
    if (local === 0) problems.push({ field: `/pipes/${i}`, message: 'at least one end of a pipe is a workload of this blueprint' });
  });

  for (const { field, pointer, value } of sealedFields(bp)) {
    if (!new RegExp(SEALED_PATTERN).test(value)) {
      problems.push({ field: pointer, message: 'starts with sealed: but is not a sealed value (sealed:v2:BASE64, as zone seal prints it)' });
    } else if (isUnboundSealed(value)) {
      problems.push({ field: pointer, message: `sealed in the old format (v1), not bound to where it may be used: re-seal it with zone seal --owner OWNER --node NODE --blueprint ${bp.name} --field ${field}` });
    }
  }
  return problems;
}

/** The smallest volume: ext4 needs room for its journal and tables. */
export const MIN_VOLUME_BYTES = 16 * 2 ** 20;

/**
 * Volumes and what names them: sizes, mounts (a host path or a filesystem volume of this
 * blueprint, one per target) and VM disks (block volumes, each given to one workload).
 * A blueprint names only its own volumes, so it can never reach another owner's.
 */
function volumeProblems(bp: Blueprint): Problem[] {
  const problems: Problem[] = [];
  const volumes = bp.volumes ?? [];
  problems.push(...duplicates(volumes.map((v) => v.name), '/volumes', 'volume'));
  const kinds = new Map(volumes.map((v) => [v.name, v.kind ?? 'filesystem']));
  volumes.forEach((v, i) => {
    if (parseSize(v.size) < MIN_VOLUME_BYTES) problems.push({ field: `/volumes/${i}/size`, message: `a volume is at least 16Mi (${MIN_VOLUME_BYTES} bytes)` });
  });
  const declared = () => [...kinds.keys()].join(', ') || 'none';
  const diskOf = new Map<string, string>();
  (bp.workloads ?? []).forEach((w, i) => {
    const targets = new Set<string>();
    (w.mounts ?? []).forEach((m, j) => {
      const field = `/workloads/${i}/mounts/${j}`;
      if ((m.source === undefined) === (m.volume === undefined)) problems.push({ field, message: 'a mount has either source (a host path) or volume (a volume of this blueprint), not both and not neither' });
      if (m.volume !== undefined) {
        const kind = kinds.get(m.volume);
        if (w.kind === 'vm') problems.push({ field: `${field}/volume`, message: 'a VM takes volumes as disks (disks: [{ volume }]), not as mounts' });
        else if (!kind) problems.push({ field: `${field}/volume`, message: `volume "${m.volume}" is not declared in volumes (declared: ${declared()})` });
        else if (kind !== 'filesystem') problems.push({ field: `${field}/volume`, message: `volume "${m.volume}" is a block volume: only a VM takes it, as a disk` });
      }
      if (targets.has(m.target)) problems.push({ field: `${field}/target`, message: `${m.target} is already the target of another mount of workload ${w.name}` });
      targets.add(m.target);
    });
    if (w.kind !== 'vm') return;
    (w.disks ?? []).forEach((d, j) => {
      const field = `/workloads/${i}/disks/${j}/volume`;
      const kind = kinds.get(d.volume);
      if (!kind) problems.push({ field, message: `volume "${d.volume}" is not declared in volumes (declared: ${declared()})` });
      else if (kind !== 'block') problems.push({ field, message: `volume "${d.volume}" is a filesystem volume: a VM's disk is a block volume (kind: block)` });
      const other = diskOf.get(d.volume);
      // qemu locks its disk images: one VM at a time.
      if (other !== undefined) problems.push({ field, message: `volume "${d.volume}" is already a disk of workload ${other} (a block volume belongs to one VM)` });
      diskOf.set(d.volume, w.name);
    });
  });
  return problems;
}
