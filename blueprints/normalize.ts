// A workload with every default filled in and every unit resolved, so two specs that
// mean the same compare equal (a spec hash over this, never over the raw YAML).
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { Network, RestartPolicy, Workload } from './schema.ts';
import { parseDuration, parseSize } from './units.ts';

export const WORKLOAD_DEFAULTS = {
  containerMemory: '128Mi',
  vmMemory: '256Mi',
  containerCpus: 1,
  pids: 512,
  restart: 'always' as RestartPolicy,
  healthInterval: '10s',
  healthTimeout: '5s',
  healthRetries: 3,
} as const;

export interface NormalizedHealth {
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
}

export interface NormalizedWorkload {
  name: string;
  kind: Workload['kind'];
  image: string;
  command: string[] | null;
  /** Values may still be `sealed:...`: only the driver that needs one opens it. */
  env: Record<string, string>;
  workdir: string | null;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  pidsLimit: number;
  vcpus: number;
  restart: RestartPolicy;
  health: NormalizedHealth | null;
  /**
   * A VM's carry the subnet of the blueprint's network of that name (it configures its
   * interface from it); a container's do not (the overlay driver joins it from the
   * network's spec), so its hash stays what it was.
   */
  networks: { name: string; ip: string; subnet?: string | null }[];
  ports: { container: number; host: number; protocol: 'tcp' | 'udp' }[];
  privileged: boolean;
  capabilities: string[];
  hostNetwork: boolean;
  mounts: { source: string; target: string; readOnly: boolean }[];
  devices: string[];
  readOnlyRootfs: boolean;
  /**
   * Set to 'pipe' when a pipe of the blueprint joins this stream (see
   * appliance/pseudokernel/pipes/ends.ts): adding or removing a pipe changes the spec hash,
   * and drivers set the stream up for it. Absent otherwise, so the hashes of workloads
   * without pipes stay what they were and running ones are adopted, not replaced.
   */
  stdin?: 'pipe';
  stdout?: 'pipe';
  /**
   * The blueprint's filesystem volumes mounted in a container, and a VM's block volumes
   * (virtio disks, in order). Absent when none, so the hashes of workloads without
   * volumes stay what they were. A volume's size is not here: growing it changes no
   * workload.
   */
  volumeMounts?: { volume: string; target: string; readOnly: boolean }[];
  disks?: { volume: string }[];
}

/** `networks`: the blueprint's declared networks, which the workload's attachments name. */
export function normalizeWorkload(w: Workload, networks: readonly Network[] = []): NormalizedWorkload {
  const r = w.resources ?? {};
  const vcpus = w.kind === 'vm' ? (w.vcpus ?? 1) : 0;
  return {
    name: w.name,
    kind: w.kind,
    image: w.image,
    command: w.command ?? null,
    env: { ...(w.env ?? {}) },
    workdir: w.workdir ?? null,
    cpus: r.cpus ?? (w.kind === 'vm' ? vcpus : WORKLOAD_DEFAULTS.containerCpus),
    memoryBytes: parseSize(r.memory ?? (w.kind === 'vm' ? WORKLOAD_DEFAULTS.vmMemory : WORKLOAD_DEFAULTS.containerMemory)),
    diskBytes: r.disk ? parseSize(r.disk) : 0,
    pidsLimit: r.pids ?? WORKLOAD_DEFAULTS.pids,
    vcpus,
    restart: w.restart ?? WORKLOAD_DEFAULTS.restart,
    health: w.health
      ? {
          command: w.health.command,
          intervalMs: parseDuration(w.health.interval ?? WORKLOAD_DEFAULTS.healthInterval),
          timeoutMs: parseDuration(w.health.timeout ?? WORKLOAD_DEFAULTS.healthTimeout),
          retries: w.health.retries ?? WORKLOAD_DEFAULTS.healthRetries,
        }
      : null,
    networks: (w.networks ?? []).map((n) => ({
      name: n.name, ip: n.ip, ...(w.kind === 'vm' ? { subnet: networks.find((d) => d.name === n.name)?.subnet ?? null } : {}),
    })),
    ports: (w.ports ?? []).map((p) => ({ container: p.container, host: p.host, protocol: p.protocol ?? 'tcp' })),
    privileged: w.privileged ?? false,
    capabilities: [...new Set(w.capabilities ?? [])].sort(),
    hostNetwork: w.hostNetwork ?? false,
    mounts: (w.mounts ?? []).flatMap((m) => (m.source === undefined ? [] : [{ source: m.source, target: m.target, readOnly: m.readOnly ?? false }])),
    devices: [...new Set(w.devices ?? [])].sort(),
    readOnlyRootfs: w.readOnlyRootfs ?? false,
    ...volumesOf(w),
  };
}

function volumesOf(w: Workload): Pick<NormalizedWorkload, 'volumeMounts' | 'disks'> {
  const volumeMounts = (w.mounts ?? []).flatMap((m) => (m.volume === undefined ? [] : [{ volume: m.volume, target: m.target, readOnly: m.readOnly ?? false }]));
  const disks = w.kind === 'vm' ? (w.disks ?? []).map((d) => ({ volume: d.volume })) : [];
  return { ...(volumeMounts.length ? { volumeMounts } : {}), ...(disks.length ? { disks } : {}) };
}

/** sha256 (hex) of the canonical JSON of a normalised workload: equal specs, equal hashes. */
export function specHash(w: NormalizedWorkload): string {
  return createHash('sha256').update(canonicalize(w) ?? '').digest('hex');
}
