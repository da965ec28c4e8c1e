// The pure heart of the engine: from the desired state, what the drivers and providers
// report and what the engine remembers, the steps that bring reality to the blueprints.
// No I/O and no clock of its own (time is an argument), so every case is a table test.
//
// One plan over a small graph of resources: network / volume -> workload -> mount / pipe end.
// A dependency is planned, not hoped for: a step whose dependency is not ready yet is
// held (the dependency's own step is planned instead), and the pass that follows the
// dependency's step plans it. So a VM's bridge exists before the VM is made, a
// workload's volumes before it is made, a workload's /zone is mounted before it is made, a container is joined to its network
// once it runs, a pipe end runs once its workload exists; removal goes in reverse
// (pipe ends, then the workload, then its mount, its blueprint's networks and, once
// their retention is over, its released volumes).
//
// A running workload whose spec hash matches plans no step: after an appliance
// restart it is adopted as it is, not restarted.
import { createHash } from 'node:crypto';
import {
  pipeEndKey, type ContainerAttachment, type NetworkSpec, type ObservedVolume, type ObservedWorkload, type PipeEnd, type VmLink, type VolumeSpec,
  type WorkloadIdentity, type WorkloadSpec,
} from '../../drivers/contract.ts';
import { volumeId } from '../../drivers/names.ts';
import type { WorkloadRecord } from '../store.ts';
import { DEFAULT_BACKOFF, ranStably, restartDelayMs, type BackoffPolicy } from '../../lib/backoff.ts';
import { blueprintKey, ENSURING, planVolumes, volumesOf, type VolumeStep } from './volumes.ts';

/**
 * On a start or restart that brings back a failed workload: the backoff exponent it
 * counts as (the first restart, 0, is immediate), and the exit it follows.
 */
export interface Recovery {
  attempt: number;
  exitCode?: number | null;
}

/** The steps that make a workload run (each ends with its driver's ensure). */
export type RunStep =
  /** Missing from its engine: create and start it. */
  | { kind: 'create'; spec: WorkloadSpec; reason: string }
  /** Defined but not running (never started, or exited and due for a restart). */
  | { kind: 'start'; spec: WorkloadSpec; reason: string; recovery?: Recovery }
  /** Running but unhealthy (or its owner asked): stop it and start it again. */
  | { kind: 'restart'; spec: WorkloadSpec; reason: string; recovery: Recovery }
  /** Its spec hash differs from the desired one: remove it and create the desired one. */
  | { kind: 'replace'; spec: WorkloadSpec; reason: string };

export type Step =
  | RunStep
  /** Ours but no longer desired. */
  | { kind: 'remove'; id: string; driver: string; identity: WorkloadIdentity; reason: string }
  /** A restart is due but its backoff has not elapsed; `attempt` is the backoff exponent used. */
  | { kind: 'wait'; spec: WorkloadSpec; until: Date; attempt: number; reason: string; exitCode?: number | null }
  /** Make (or bring in line) a blueprint's network: missing, down, changed since the engine last ensured it, or changed by hand (drifted). */
  | { kind: 'ensure-network'; network: NetworkSpec; hash: string; reason: string }
  /** A network the driver manages that no live blueprint declares. */
  | { kind: 'remove-network'; id: string; reason: string }
  /** Give a running container an interface in its network with its declared IP. */
  | { kind: 'attach-container-to-network'; network: NetworkSpec; workload: string; container: ContainerAttachment }
  /** Make the bridge a VM plugs into (before the VM is made); `workload` is its engine-side id. */
  | { kind: 'make-vm-bridge'; network: NetworkSpec; workload: string; vm: { workload: string; ip: string } }
  /** Mount a container's /zone before it is made. */
  | { kind: 'mount'; spec: WorkloadSpec }
  /** Unmount the /zone of a workload that is gone. */
  | { kind: 'unmount'; id: string }
  /** Run exactly these pipe ends from now on. */
  | { kind: 'pipe-ends'; ends: PipeEnd[] }
  /** A volume's (volumes.ts): ensure it, refuse a change, release it, keep it until its retention ends, delete it. */
  | VolumeStep;

export type StepKind = Step['kind'];

/** What the engine wants: every live stored blueprint's workloads, networks and pipe ends here. */
export interface Desired {
  workloads: readonly WorkloadSpec[];
  networks: readonly NetworkSpec[];
  /** The pipe ends of the live blueprints that are local to this node. */
  pipeEnds: readonly PipeEnd[];
  /** The desired workloads (by id) that get a /zone from the mount provider. */
  mounts: ReadonlySet<string>;
  /** The live blueprints' volumes here. */
  volumes?: readonly VolumeSpec[];
}

/** One network as the engine sees it. */
export interface NetworkView {
  owner: string;
  blueprint: string;
  up: boolean;
  /** The hash of the definition the engine last ensured it with (since this start); null when not yet. */
  ensured: string | null;
  /** What the driver saw differ from what it applied (changed by hand), when anything did. */
  drift?: string;
}

export interface Observed {
  /** What the drivers list, by engine-side id. */
  workloads: ReadonlyMap<string, ObservedWorkload>;
  /** Workload kinds whose engine cannot be asked now (unreachable, or no driver): nothing is planned for them. */
  unavailable: ReadonlySet<string>;
  /** What the engine remembers of each workload, by engine-side id. */
  records: ReadonlyMap<string, WorkloadRecord>;
  /**
   * The networks the network driver manages, by id; null: no network driver here, or it
   * cannot list now. One is ensured when missing, changed, not yet ensured since this
   * start, drifted, or (with WireGuard) not up.
   */
  networks?: ReadonlyMap<string, NetworkView> | null;
  /** The VM links made since the network was last ensured, by linkKey. */
  vmLinks?: ReadonlyMap<string, VmLink>;
  /** The containers joined to a network since it was last ensured, by joinKey (a restarted one has a new pid). */
  joined?: ReadonlySet<string>;
  /** The /zone mounts there are, host directory by workload id; null: no mount provider here. */
  mounts?: ReadonlyMap<string, string> | null;
  /** Workloads whose mount failed since their last run step: they are made without /zone. */
  mountFailed?: ReadonlySet<string>;
  /** The pipe ends that run, workload id by pipeEndKey; null: no pipe-end provider, or it cannot run ends now. */
  pipeEnds?: ReadonlyMap<string, string> | null;
  /** The volumes the volume provider manages; null: no volume provider here, or it cannot list now. */
  volumes?: readonly ObservedVolume[] | null;
  /** Restarts asked for (by the owner), reason by workload id. */
  restartsAsked?: ReadonlyMap<string, string>;
  /** Steps other than a workload's that failed, by stepKey: not tried again before this time. */
  retryAt?: ReadonlyMap<string, Date>;
}

export const linkKey = (network: string, workload: string) => `${network}|${workload}`;
export const joinKey = (network: string, workload: string, c: ContainerAttachment) => `${network}|${workload}|${c.pid}|${c.ip}`;

/** What the engine compares to know whether a network needs its ensure again. */
export function networkHash(network: NetworkSpec): string {
  return createHash('sha256').update(JSON.stringify(network.definition)).digest('hex');
}

/** The key a step is busy under (one step per key at a time): a workload step its workload's id. */
export function stepKey(step: Step): string {
  switch (step.kind) {
    case 'create': case 'start': case 'restart': case 'replace': case 'wait': return step.spec.id;
    case 'mount': return `mount:${step.spec.id}`;
    case 'remove': return step.id;
    case 'ensure-network': return `network:${step.network.id}`;
    case 'remove-network': return `network:${step.id}`;
    case 'attach-container-to-network': case 'make-vm-bridge': return `${step.kind}:${linkKey(step.network.id, step.workload)}`;
    case 'unmount': return `mount:${step.id}`;
    case 'pipe-ends': return 'pipe-ends';
    case 'volume-create': case 'volume-grow': case 'volume-reclaim': case 'volume-mount': case 'volume-refuse': return `volume:${step.spec.id}`;
    case 'volume-release': case 'volume-keep': case 'volume-delete': return `volume:${step.id}`;
  }
}

export interface PlanOptions {
  backoff?: BackoffPolicy;
  /** Keys (stepKey) with a step in flight: planned again once it ends. */
  busy?: ReadonlySet<string>;
  /** How long a volume no blueprint lists keeps its data (default 24 h). */
  volumeRetentionMs?: number;
}

function wantsRestart(spec: WorkloadSpec, o: ObservedWorkload): boolean {
  switch (spec.definition.restart) {
    case 'always': return true;
    case 'on-failure': return o.oomKilled || (o.exitCode ?? 1) !== 0;
    case 'never': return false;
  }
}

/** Who a workload is on this node (records do not hold the node: they are all this node's). */
const identityKey = (w: Omit<WorkloadIdentity, 'node'>) => JSON.stringify([w.owner, w.blueprint, w.workload]);

function describeExit(o: ObservedWorkload): string {
  if (o.oomKilled) return 'killed: out of memory';
  return o.exitCode === null ? 'exited' : `exited with code ${o.exitCode}`;
}

/** The workload steps alone (create, start, restart, replace, remove, wait), before dependencies are looked at. */
export function planWorkloads(
  desired: readonly WorkloadSpec[],
  observed: Pick<Observed, 'workloads' | 'unavailable' | 'records' | 'restartsAsked'>,
  now: Date,
  options: PlanOptions = {},
): Step[] {
  const records = observed.records;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const busy = options.busy ?? new Set<string>();
  const steps: Step[] = [];

  /** A restart of a failed workload: at once the first time, then once its backoff has elapsed. */
  const afterBackoff = (spec: WorkloadSpec, kind: 'start' | 'restart', reason: string, run: ObservedWorkload, runEndedAt: Date): Step => {
    const r = records.get(spec.id);
    const exit = kind === 'start' ? { exitCode: run.exitCode } : {};
    if (r?.nextRestartAt) {
      const until = new Date(r.nextRestartAt);
      return now >= until ? { kind, spec, reason, recovery: { attempt: r.attempt, ...exit } } : { kind: 'wait', spec, until, attempt: r.attempt, reason, ...exit };
    }
    const attempt = ranStably(run.startedAt, runEndedAt, backoff) ? 0 : (r?.attempt ?? 0);
    const delayMs = restartDelayMs(attempt, backoff);
    if (delayMs === 0) return { kind, spec, reason, recovery: { attempt, ...exit } };
    return { kind: 'wait', spec, until: new Date(now.getTime() + delayMs), attempt, reason, ...exit };
  };

  const wanted = new Set(desired.map((d) => d.id));
  // A workload under another name than its own (an older appliance's): removed first,
  // and its replacement created once it is gone (its removal no longer in flight, its
  // record forgotten), so the two never hold its ports, or its /zone, at once.
  const renamed = new Set([
    ...[...observed.workloads.values()].filter((o) => !wanted.has(o.id)).map(identityKey),
    ...[...records.values()].filter((r) => !wanted.has(r.id) && busy.has(r.id)).map(identityKey),
  ]);

  for (const spec of desired) {
    if (busy.has(spec.id) || observed.unavailable.has(spec.definition.kind)) continue;
    const o = observed.workloads.get(spec.id);
    const r = records.get(spec.id);
    if (!o && renamed.has(identityKey(spec))) continue;
    const asked = observed.restartsAsked?.get(spec.id);
    if (o && asked !== undefined && o.specHash === spec.specHash) {
      steps.push({ kind: 'restart', spec, reason: asked, recovery: { attempt: r?.attempt ?? 0 } });
    } else if (!o) {
      // A create that failed before waits out its backoff; a new or vanished one goes now.
      const reason = !r || r.state === 'pending' ? 'new workload' : 'missing from its engine';
      const due = !r?.nextRestartAt || now >= new Date(r.nextRestartAt);
      steps.push(due ? { kind: 'create', spec, reason } : { kind: 'wait', spec, until: new Date(r.nextRestartAt ?? 0), attempt: r.attempt, reason });
    } else if (o.specHash !== spec.specHash) {
      steps.push({ kind: 'replace', spec, reason: 'spec changed' });
    } else if (o.state === 'running') {
      if (o.health === 'unhealthy' && spec.definition.restart !== 'never') steps.push(afterBackoff(spec, 'restart', 'unhealthy', o, now));
    } else if (o.state === 'created' || o.state === 'paused') {
      steps.push({ kind: 'start', spec, reason: o.state === 'created' ? 'not started' : 'paused' });
    } else if (wantsRestart(spec, o)) {
      steps.push(afterBackoff(spec, 'start', describeExit(o), o, o.finishedAt ? new Date(o.finishedAt) : now));
    }
  }

  const desiredIdentities = new Set(desired.map(identityKey));
  for (const o of observed.workloads.values()) {
    if (wanted.has(o.id) || busy.has(o.id)) continue;
    steps.push({
      kind: 'remove', id: o.id, driver: o.kind,
      identity: { node: o.node, owner: o.owner, blueprint: o.blueprint, workload: o.workload },
      reason: desiredIdentities.has(identityKey(o)) ? 'named by an older appliance: replaced under its own name' : 'not desired any more',
    });
  }
  return steps;
}

const DAY_MS = 24 * 3600 * 1000;

const isRunStep = (s: Step): s is RunStep => s.kind === 'create' || s.kind === 'start' || s.kind === 'restart' || s.kind === 'replace';

export interface Plan {
  steps: Step[];
  /** Workloads (by id) whose step waits for a dependency (a network, a bridge, a volume, a mount) planned first. */
  held: Set<string>;
}

/** The whole plan: networks, volumes, workloads, their mounts and links, and the pipe ends, in dependency order. */
export function plan(desired: Desired, observed: Observed, now: Date, options: PlanOptions = {}): Plan {
  const busy = options.busy ?? new Set<string>();
  const steps: Step[] = [];
  const held = new Set<string>();
  const retryAt = observed.retryAt ?? new Map<string, Date>();
  const idle = (s: Step) => !busy.has(stepKey(s)) && !((retryAt.get(stepKey(s))?.getTime() ?? -Infinity) > now.getTime());
  const networks = observed.networks ?? null;
  const vmLinks = observed.vmLinks ?? new Map<string, VmLink>();
  const wantedIds = new Set(desired.workloads.map((w) => w.id));

  // Networks first: every other kind may depend on one.
  const hashes = new Map(desired.networks.map((n) => [n.id, networkHash(n)]));
  const ready = new Set<string>();
  if (networks) {
    for (const network of desired.networks) {
      const seen = networks.get(network.id);
      const hash = hashes.get(network.id) ?? '';
      // A node-local network (no `wireguard`) has no interface to be up.
      const up = seen !== undefined && (seen.up || !network.definition.wireguard);
      if (up && seen.ensured === hash && !seen.drift) {
        if (!busy.has(`network:${network.id}`)) ready.add(network.id);
        continue;
      }
      const reason = !seen ? 'new network' : !up ? 'not up' : seen.ensured === null ? 'not ensured since the appliance started'
        : seen.ensured !== hash ? 'definition changed' : `drifted: ${seen.drift}`;
      const step: Step = { kind: 'ensure-network', network, hash, reason };
      if (idle(step)) steps.push(step);
    }
  }
  /** A workload's places in the networks of its blueprint, in the order it names them. */
  const byName = new Map(desired.networks.map((n) => [JSON.stringify([n.owner, n.blueprint, n.network]), n]));
  const attachmentsOf = (w: WorkloadSpec) => w.definition.networks.flatMap((a) => {
    const network = byName.get(JSON.stringify([w.owner, w.blueprint, a.name]));
    return network ? [{ network, ip: a.ip }] : [];
  });

  // Volumes, beside the networks: a workload may depend on them. One of a blueprint
  // whose workloads are on their way out (removed, or replaced) is not deleted before
  // they are gone: they may still mount it.
  const volumes = observed.volumes ? new Map(observed.volumes.map((v) => [v.id, v])) : null;
  const volumeSpecs = new Map((desired.volumes ?? []).map((v) => [v.id, v]));
  const volumeSteps = new Map<string, VolumeStep>();
  if (observed.volumes) {
    const hashes = new Map(desired.workloads.map((w) => [w.id, w.specHash]));
    const holders = new Set([...observed.workloads.values()].filter((w) => hashes.get(w.id) !== w.specHash).map(blueprintKey));
    for (const step of planVolumes(desired.volumes ?? [], observed.volumes, now, options.volumeRetentionMs ?? DAY_MS, { holders })) {
      if ('spec' in step) volumeSteps.set(step.spec.id, step);
      // A keep is not run: it only says when to look again.
      if (step.kind === 'volume-keep' || idle(step)) steps.push(step);
    }
  }
  /**
   * A workload's volume paths by name; null while one is not ready (missing, released,
   * unmounted, or its step planned or in flight). A volume that is refused or not
   * declared is left out: the workload's step fails naming it.
   */
  const volumePathsOf = (spec: WorkloadSpec): Record<string, string> | null => {
    const paths: Record<string, string> = {};
    for (const name of volumesOf(spec)) {
      const id = volumeId(spec.node, spec.owner, spec.blueprint, name);
      const want = volumeSpecs.get(id);
      const pending = volumeSteps.get(id);
      if (!want || pending?.kind === 'volume-refuse') continue;
      const o = volumes?.get(id);
      if (!o || o.kind !== want.kind || o.releasedAt !== null || o.path === null) return null;
      // A grow that failed (in use, without CAP_SYS_RESOURCE) waits out its backoff; a replacement grows it meanwhile.
      if (busy.has(`volume:${id}`) || (pending && ENSURING.has(pending.kind) && idle(pending))) return null;
      paths[name] = o.path;
    }
    return paths;
  };

  // Workloads, each run step held until what it needs is there.
  const pipeHeld = new Set(observed.pipeEnds ? observed.pipeEnds.values() : []);
  for (const step of planWorkloads(desired.workloads, observed, now, options)) {
    if (step.kind === 'remove') {
      // Its pipe ends stop first (the pipe-ends step below drops them).
      if (!pipeHeld.has(step.id)) steps.push(step);
      continue;
    }
    if (!isRunStep(step)) {
      steps.push(step);
      continue;
    }
    let spec = step.spec;
    if (volumes && volumesOf(spec).length) {
      const volumePaths = volumePathsOf(spec);
      if (!volumePaths) {
        held.add(spec.id);
        continue;
      }
      spec = { ...spec, volumePaths };
    }
    if (spec.definition.kind === 'vm' && networks) {
      const links = attachmentsOf(spec).map(({ network }) => vmLinks.get(linkKey(network.id, spec.id)));
      // The bridge step is planned below, with every VM's.
      if (links.some((l) => !l)) {
        held.add(spec.id);
        continue;
      }
      if (links.length) spec = { ...spec, vmLinks: links as VmLink[] };
    }
    if (observed.mounts && desired.mounts.has(spec.id)) {
      const mountpoint = observed.mounts.get(spec.id);
      if (mountpoint !== undefined) {
        steps.push({ ...step, spec: { ...spec, zoneMount: mountpoint } });
        continue;
      }
      if (!observed.mountFailed?.has(spec.id)) {
        const mount: Step = { kind: 'mount', spec };
        if (idle(mount)) steps.push(mount);
        held.add(spec.id);
        continue;
      }
    }
    steps.push({ ...step, spec });
  }

  // Links between workloads and networks: a VM's bridge whenever it lacks one (before
  // it is made, and again once its network was ensured anew), a container once it runs.
  for (const spec of desired.workloads) {
    if (observed.unavailable.has(spec.definition.kind)) continue;
    for (const { network, ip } of attachmentsOf(spec)) {
      if (!ready.has(network.id)) continue;
      if (spec.definition.kind === 'vm') {
        if (vmLinks.has(linkKey(network.id, spec.id))) continue;
        const step: Step = { kind: 'make-vm-bridge', network, workload: spec.id, vm: { workload: spec.workload, ip } };
        if (idle(step)) steps.push(step);
        continue;
      }
      const o = observed.workloads.get(spec.id);
      if (o?.state !== 'running' || !o.pid || busy.has(spec.id)) continue;
      const container = { workload: spec.workload, pid: o.pid, ip };
      if (observed.joined?.has(joinKey(network.id, spec.id, container))) continue;
      const step: Step = { kind: 'attach-container-to-network', network, workload: spec.id, container };
      if (idle(step)) steps.push(step);
    }
  }

  // Pipe ends once their workload exists; dropped before it is removed.
  if (observed.pipeEnds) {
    const ends = desired.pipeEnds.filter((e) => wantedIds.has(e.workloadId)
      && (observed.workloads.has(e.workloadId) || (observed.unavailable.has(e.kind) && observed.pipeEnds?.has(pipeEndKey(e)))));
    const running = [...observed.pipeEnds.keys()].sort();
    const wanted = ends.map(pipeEndKey).sort();
    const step: Step = { kind: 'pipe-ends', ends };
    if (JSON.stringify(running) !== JSON.stringify(wanted) && idle(step)) steps.push(step);
  }

  // Reverse order: a /zone once its workload is gone, a network once its blueprint's removed workloads are.
  for (const id of observed.mounts?.keys() ?? []) {
    const step: Step = { kind: 'unmount', id };
    if (!wantedIds.has(id) && !observed.workloads.has(id) && !busy.has(id) && idle(step)) steps.push(step);
  }
  for (const [id, seen] of networks ?? []) {
    if (hashes.has(id)) continue;
    const leaving = [...observed.workloads.values()].some((o) => !wantedIds.has(o.id) && o.owner === seen.owner && o.blueprint === seen.blueprint);
    const step: Step = { kind: 'remove-network', id, reason: 'no live blueprint declares it' };
    if (!leaving && idle(step)) steps.push(step);
  }
  return { steps, held };
}
