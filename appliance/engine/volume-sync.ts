// Volumes kept real beside the workloads: each pass plans them (volumes.ts) and the
// steps run here, one pass's worth at a time (calls while one runs coalesce into one
// more with the latest view). A workload's own volumes are ensured by prepare() right
// before its driver makes it, so a workload never starts without its data.
// MERGE (issue 16): with the graph planner, the ensuring steps become volume nodes the
// workload nodes depend on (volume -> workload), prepare() becomes the edge that fills
// `volumePaths`, and this class the executors of the volume step kinds.
import type { Logger } from 'pino';
import { VolumeSpecError, WorkloadSpecError, type ObservedVolume, type ObservedWorkload, type VolumeProvider, type VolumeSpec, type WorkloadSpec } from '../../drivers/contract.ts';
import { volumeId } from '../../drivers/names.ts';
import type { EventLog } from '../events.ts';
import type { Store, StoredBlueprint } from '../store.ts';
import { ENSURING, blueprintKey, desiredVolumes, planVolumes, type VolumeStep } from './volumes.ts';

export interface VolumeSyncOptions {
  node: string;
  provider: VolumeProvider;
  retentionMs: number;
  store: Store;
  events: EventLog;
  logger: Logger;
  /** Asks for a pass at this time (ms since the epoch): when a retention ends. */
  wakeAt: (at: number) => void;
}

interface View {
  desired: VolumeSpec[];
  holders: Set<string>;
  now: Date;
}

/** The names of the volumes a workload uses (mounts and disks). */
export const volumesOf = (spec: WorkloadSpec): string[] => [
  ...(spec.definition.volumeMounts ?? []).map((m) => m.volume),
  ...(spec.definition.disks ?? []).map((d) => d.volume),
];

const DONE: Record<VolumeStep['kind'], string> = {
  create: 'created', grow: 'grown', reclaim: 'reclaimed', mount: 'mounted', refuse: 'refused', release: 'released', keep: 'kept', delete: 'deleted',
};

export class VolumeSync {
  /** The desired volumes of the latest pass, by id: what prepare() ensures. */
  private specs = new Map<string, VolumeSpec>();
  private running: Promise<void> | null = null;
  private latest: View | null = null;

  constructor(private readonly o: VolumeSyncOptions) {}

  /**
   * Plans and runs the volume steps for the live blueprints. `workloads`: what the drivers
   * list; one whose spec is no longer desired may still mount its blueprint's volumes.
   */
  sync(live: readonly StoredBlueprint[], desired: readonly WorkloadSpec[], workloads: ReadonlyMap<string, ObservedWorkload>, now: Date): Promise<void> {
    const volumes = desiredVolumes(this.o.node, live);
    this.specs = new Map(volumes.map((v) => [v.id, v]));
    const wanted = new Map(desired.map((d) => [d.id, d.specHash]));
    const holders = new Set([...workloads.values()].filter((w) => wanted.get(w.id) !== w.specHash).map(blueprintKey));
    this.latest = { desired: volumes, holders, now };
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** The spec with the host paths of its volumes, each ensured first; a volume that cannot be made fails the workload with its reason. */
  async prepare(spec: WorkloadSpec): Promise<WorkloadSpec> {
    const names = volumesOf(spec);
    if (names.length === 0) return spec;
    const paths: Record<string, string> = {};
    for (const name of names) {
      const v = this.specs.get(volumeId(spec.node, spec.owner, spec.blueprint, name));
      if (!v) throw new WorkloadSpecError(spec.workload, `volumes.${name}`, `volume ${name} is not declared by blueprint ${spec.blueprint}`);
      let observed: ObservedVolume;
      try {
        observed = await this.o.provider.ensure(v);
      } catch (err) {
        if (err instanceof VolumeSpecError) throw new WorkloadSpecError(spec.workload, `volumes.${name}`, err.message);
        throw err;
      }
      if (observed.path === null) throw new Error(`volume ${name} has no path on this node after ensure`);
      paths[name] = observed.path;
    }
    return { ...spec, volumePaths: paths };
  }

  /** Every volume here with what it uses, for GET /v1/volumes. */
  async list(): Promise<(ObservedVolume & { usedBytes: number })[]> {
    const volumes = await this.o.provider.list();
    return Promise.all(volumes.map(async (v) => ({ ...v, usedBytes: await this.o.provider.usage(v.id).catch(() => 0) })));
  }

  private async drain(): Promise<void> {
    while (this.latest) {
      const view = this.latest;
      this.latest = null;
      await this.apply(view).catch((err: unknown) => this.o.logger.error({ err }, 'volume sync failed'));
    }
  }

  private async apply({ desired, holders, now }: View): Promise<void> {
    const observed = await this.o.provider.list();
    const steps = planVolumes(desired, observed, now, this.o.retentionMs, { holders });
    for (const step of steps) await this.execute(step, now);
    const due = steps.flatMap((s) => ((s.kind === 'keep' || s.kind === 'release') && s.until > now ? [s.until.getTime()] : []));
    if (due.length) this.o.wakeAt(Math.min(...due));
  }

  private async execute(step: VolumeStep, now: Date): Promise<void> {
    const who = 'spec' in step ? step.spec : step.identity;
    const log = { owner: who.owner, blueprint: who.blueprint, volume: who.volume, step: step.kind, reason: step.reason };
    try {
      if (ENSURING.has(step.kind) && 'spec' in step) await this.o.provider.ensure(step.spec);
      else if (step.kind === 'release') await this.o.provider.release(step.id, now);
      else if (step.kind === 'delete') await this.o.provider.remove(step.id);
      else if (step.kind === 'refuse') {
        this.o.logger.warn(log, 'volume change refused');
        return;
      } else return;
      this.o.logger.info(log, `volume ${step.kind}`);
      this.o.store.transaction(() => this.o.events.record({
        owner: who.owner, blueprint: who.blueprint, workload: null, from: null, to: `volume ${who.volume}: ${DONE[step.kind]}`, reason: step.reason,
      }));
    } catch (err) {
      // The next pass sees it again and tries again.
      this.o.logger.warn({ ...log, error: (err as Error).message }, `volume ${step.kind} failed`);
    }
  }
}
