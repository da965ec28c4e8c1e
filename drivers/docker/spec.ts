// Workload spec -> Docker container create options, with no I/O: the safe defaults
// live here so they are table-tested without dockerd.
import { pinnedImage } from '../../blueprints/image-ref.ts';
import type Docker from 'dockerode';
import { WorkloadSpecError, type WorkloadSpec } from '../contract.ts';
import { SECRETS_TARGET, sealedEnvNames } from './secrets.ts';
import { ownerNetworkName } from './owner-network.ts';

/** The labels that make a container ours; `list()` and `watch()` find containers by them. */
export const LABELS = {
  node: 'zone.node',
  owner: 'zone.owner',
  blueprint: 'zone.blueprint',
  workload: 'zone.workload',
  specHash: 'zone.spec-hash',
} as const;

/**
 * What every container keeps after `CapDrop: ALL`: enough for ordinary images that start
 * as root to chown their files, switch to their own user, bind ports below 1024 and
 * signal their children. Anything more (NET_ADMIN, SYS_ADMIN, ...) comes only from
 * `capabilities`, which admission has checked against the node policy.
 */
export const DEFAULT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE', 'SETGID', 'SETUID'] as const;

/** json-file logs, rotated: an edge node must not fill its disk with one chatty workload. */
export const LOG_CONFIG = { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } } as const;
/**
 * A piped stdout's log (what a producer replays after an appliance restart) in Docker's
 * `local` format, uncompressed, rotated alike: dockerd's JSON encoding of every chunk
 * cost more than moving the bytes through the attach (64 MiB of zeros: 5.8 s vs 1.3 s).
 */
export const PIPED_LOG_CONFIG = { Type: 'local', Config: { 'max-size': '10m', 'max-file': '3', compress: 'false' } } as const;

const NS_PER_MS = 1_000_000;

export function containerLabels(spec: WorkloadSpec): Record<string, string> {
  return {
    [LABELS.node]: spec.node,
    [LABELS.owner]: spec.owner,
    [LABELS.blueprint]: spec.blueprint,
    [LABELS.workload]: spec.workload,
    [LABELS.specHash]: spec.specHash,
  };
}

/**
 * The create options for `spec`. Sealed env values are not in them: `secretsDir` (the
 * host directory of secrets.ts, when the workload has any) is mounted at SECRETS_TARGET
 * and each sealed VAR becomes VAR_FILE naming its file there.
 */
export function containerCreateOptions(spec: WorkloadSpec, secretsDir: string | null): Docker.ContainerCreateOptions {
  const d = spec.definition;
  const fail = (field: string, reason: string) => new WorkloadSpecError(spec.workload, field, reason);
  if (d.kind !== 'container') throw fail('kind', `the docker driver runs kind "container", not "${d.kind}"`);
  if (d.hostNetwork && d.networks.length > 0) throw fail('networks', 'a workload on the host network cannot also join zone networks; drop one of hostNetwork and networks');
  if (d.ports.length > 0 && d.hostNetwork) throw fail('ports', 'on the host network the container\'s ports are the host\'s: remove ports');
  if (d.ports.length > 0 && d.networks.length > 0) throw fail('ports', 'a workload on zone networks has only overlay interfaces, so nothing can be published on the host: remove ports or networks');

  const volumeMounts = (d.volumeMounts ?? []).map((m) => {
    const source = spec.volumePaths?.[m.volume];
    if (!source) throw fail(`mounts.${m.volume}`, `volume ${m.volume} has no path on this node (the engine ensures a workload's volumes before it asks the driver)`);
    return { Type: 'bind' as const, Source: source, Target: m.target, ReadOnly: m.readOnly };
  });
  if (spec.zoneMount) {
    // Docker refuses two mounts at one target, and one below /zone would be made inside the pseudokernel's file system.
    const targets = [...d.mounts, ...(d.volumeMounts ?? [])].map((m) => m.target);
    const i = targets.findIndex((t) => t === '/zone' || t.startsWith('/zone/'));
    if (i >= 0) throw fail(`mounts[${i}].target`, `${targets[i]} is inside /zone, the pseudokernel's mount on this node; choose another target`);
  }

  const sealed = sealedEnvNames(spec);
  if (sealed.length > 0 && !secretsDir) throw fail('env', 'sealed values need the secrets directory');
  const clash = sealed.find((name) => `${name}_FILE` in d.env);
  if (clash) throw fail(`env.${clash}_FILE`, `${clash} is sealed, so ${clash}_FILE names its file; drop one of them`);

  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostPort: string }[]> = {};
  for (const p of d.ports) {
    const key = `${p.container}/${p.protocol}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostPort: String(p.host) });
  }

  const hostConfig: Docker.HostConfig = {
    // The engine restarts workloads, with backoff: Docker must not race it.
    RestartPolicy: { Name: 'no' },
    // An init as PID 1 forwards signals (so stop is graceful) and reaps zombies.
    Init: true,
    NanoCpus: Math.round(d.cpus * 1e9),
    Memory: d.memoryBytes,
    // Equal to Memory: no swap beyond the limit, so admission's arithmetic holds.
    MemorySwap: d.memoryBytes,
    PidsLimit: d.pidsLimit,
    ReadonlyRootfs: d.readOnlyRootfs,
    SecurityOpt: ['no-new-privileges'],
    // Plain containers join their owner's own bridge (owner-network.ts), never Docker's shared one.
    NetworkMode: d.hostNetwork ? 'host' : d.networks.length > 0 ? 'none' : ownerNetworkName(spec.node, spec.owner),
    PortBindings: bindings,
    Mounts: [
      ...d.mounts.map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
      ...volumeMounts,
      // rslave: a mount made below it on the host later still reaches the container.
      ...(spec.zoneMount ? [{ Type: 'bind' as const, Source: spec.zoneMount, Target: '/zone', ReadOnly: false, BindOptions: { Propagation: 'rslave' as const } }] : []),
      ...(sealed.length > 0 && secretsDir ? [{ Type: 'bind' as const, Source: secretsDir, Target: SECRETS_TARGET, ReadOnly: true }] : []),
    ],
    Devices: d.devices.map((path) => ({ PathOnHost: path, PathInContainer: path, CgroupPermissions: 'rwm' })),
    LogConfig: d.stdout === 'pipe' ? { Type: PIPED_LOG_CONFIG.Type, Config: { ...PIPED_LOG_CONFIG.Config } } : { Type: LOG_CONFIG.Type, Config: { ...LOG_CONFIG.Config } },
  };
  if (d.privileged) {
    hostConfig.Privileged = true;
  } else {
    hostConfig.CapDrop = ['ALL'];
    hostConfig.CapAdd = [...new Set([...DEFAULT_CAPABILITIES, ...d.capabilities])].sort();
  }

  return {
    name: spec.id,
    // A pinned image is run by its ID (what its digest is): the archive it came from carries no repo digest.
    Image: pinnedImage(d.image)?.digest ?? d.image,
    ...(d.command ? { Cmd: d.command } : {}),
    ...(d.workdir ? { WorkingDir: d.workdir } : {}),
    // Docker refuses a hostname on the host network.
    ...(d.hostNetwork ? {} : { Hostname: d.name }),
    Env: Object.keys(d.env).sort().map((name) => (sealed.includes(name) ? `${name}_FILE=${SECRETS_TARGET}/${name}` : `${name}=${d.env[name] ?? ''}`)),
    Labels: containerLabels(spec),
    // Stdin stays open and survives detaches, so shells can attach and re-attach; the
    // stdin of a pipe's end instead gets EOF when its feeder closes the attach.
    OpenStdin: true,
    StdinOnce: d.stdin === 'pipe',
    Tty: false,
    ExposedPorts: exposed,
    // Health is what the blueprint says: an image's own HEALTHCHECK is switched off.
    Healthcheck: d.health
      ? {
          Test: ['CMD', ...d.health.command],
          Interval: d.health.intervalMs * NS_PER_MS,
          Timeout: d.health.timeoutMs * NS_PER_MS,
          Retries: d.health.retries,
          StartPeriod: 0,
        }
      : { Test: ['NONE'] },
    HostConfig: hostConfig,
  };
}

/**
 * Docker's `since`/`until` form of one of its RFC 3339 times, moved by `shiftMs`: seconds
 * since the epoch with nanoseconds (`1714557600.123456789`), which a Date would round.
 */
export function dockerTimestamp(time: string, shiftMs = 0): string {
  return dockerSeconds(nanosOf(time) + BigInt(shiftMs) * 1_000_000n);
}

function nanosOf(time: string): bigint {
  const m = /^([^.]+?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : Number.NaN;
  if (!m || Number.isNaN(ms)) throw new Error(`"${time}" is not an RFC 3339 time (e.g. 2024-05-01T10:00:00.123456789Z)`);
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

function dockerSeconds(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
}

/** How long before its StartedAt an incarnation's first lines may be logged, where the end of the one before is unknown. */
export const REPLAY_BEFORE_MS = 100;
/** How long after its FinishedAt an incarnation's last lines may be logged: Docker copies what the process wrote after it ended, late under load. */
export const REPLAY_AFTER_MS = 2_000;

/**
 * The `since` and `until` of the log request that gives one incarnation's lines. The log
 * has no incarnation marks, only times, and Docker's times are a little off both ways: the
 * first lines are logged a moment before StartedAt is recorded, the last ones a moment
 * after FinishedAt, moments that grow with the machine's load. While the container runs,
 * its FinishedAt is the end of the incarnation before (none: this is its first, and the
 * whole log is its own): halfway between that end and this start splits the two however
 * late each side was logged. Once it has exited, the end before is no longer known:
 * REPLAY_BEFORE_MS before its start (a restart takes longer than that); its own lines end
 * by REPLAY_AFTER_MS after its end (a next start would have to fall between the inspect
 * and the reading of the log).
 */
export function replayWindow(incarnation: { startedAt: string; finishedAt: string | null; running: boolean }): { since: string; until?: string } {
  const started = nanosOf(incarnation.startedAt);
  if (!incarnation.running) {
    const since = dockerTimestamp(incarnation.startedAt, -REPLAY_BEFORE_MS);
    return incarnation.finishedAt ? { since, until: dockerTimestamp(incarnation.finishedAt, REPLAY_AFTER_MS) } : { since };
  }
  if (!incarnation.finishedAt) return { since: '0' };
  const endBefore = nanosOf(incarnation.finishedAt);
  if (endBefore >= started) return { since: dockerTimestamp(incarnation.startedAt, -REPLAY_BEFORE_MS) };
  return { since: dockerSeconds((endBefore + started) / 2n) };
}
