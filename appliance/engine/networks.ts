// The blueprints' networks, kept real beside the workloads: every network of a live
// blueprint is ensured (the driver applies key, port and peer changes in place and
// recreates what was deleted), every network no blueprint wants any more is removed,
// every running container that names a network is joined to it with its declared IP,
// and every VM that names one gets the bridge its domain plugs into (made before the VM
// runs: a VM that starts first fails once and is retried by the engine's backoff).
// Level-triggered like the workload passes: a sync looks at everything each time.
import type { Logger } from 'pino';
import type { ObservedWorkload } from '../../drivers/contract.ts';
import type { ContainerAttachment, NetworkDriver, NetworkSpec } from '../../drivers/contract.ts';
import { attachmentsOf, networkSpecsOf } from '../../drivers/wireguard/specs.ts';
import type { StoredBlueprint } from '../store.ts';
import { workloadId } from '../../drivers/names.ts';

export interface NetworkPlan {
  ensure: NetworkSpec[];
  /** Ids of networks the driver manages that no live blueprint declares. */
  remove: string[];
  attach: { spec: NetworkSpec; container: ContainerAttachment }[];
  attachVm: { spec: NetworkSpec; vm: { workload: string; ip: string } }[];
}

/** What to do, from the stored blueprints, the networks the driver has and the workloads that run. */
export function planNetworks(
  node: string,
  blueprints: readonly StoredBlueprint[],
  managed: readonly string[],
  workloads: ReadonlyMap<string, ObservedWorkload>,
): NetworkPlan {
  const live = blueprints.filter((b) => !b.deleted);
  const ensure = live.flatMap((b) => networkSpecsOf(b.document, node));
  const wanted = new Set(ensure.map((s) => s.id));
  const attach = live.flatMap((b) => (b.document.workloads ?? []).filter((w) => w.kind === 'container').flatMap((w) => {
    const observed = workloads.get(workloadId(node, b.owner, b.name, w.name));
    if (observed?.state !== 'running' || !observed.pid) return [];
    const pid = observed.pid;
    return attachmentsOf(b.document, node, w.name).map(({ spec, ip }) => ({ spec, container: { workload: w.name, pid, ip } }));
  }));
  const attachVm = live.flatMap((b) => (b.document.workloads ?? []).filter((w) => w.kind === 'vm')
    .flatMap((w) => attachmentsOf(b.document, node, w.name).map(({ spec, ip }) => ({ spec, vm: { workload: w.name, ip } }))));
  return { ensure, remove: managed.filter((id) => !wanted.has(id)), attach, attachVm };
}

export class NetworkSync {
  private running: Promise<void> | null = null;
  private latest: { blueprints: readonly StoredBlueprint[]; workloads: ReadonlyMap<string, ObservedWorkload> } | null = null;

  constructor(private readonly node: string, private readonly driver: NetworkDriver, private readonly logger: Logger) {}

  /** Brings networks and joins in line; calls made while one runs coalesce into one more with the latest view. */
  sync(blueprints: readonly StoredBlueprint[], workloads: ReadonlyMap<string, ObservedWorkload>): Promise<void> {
    this.latest = { blueprints, workloads };
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.latest) {
      const { blueprints, workloads } = this.latest;
      this.latest = null;
      await this.apply(blueprints, workloads);
    }
  }

  private async apply(blueprints: readonly StoredBlueprint[], workloads: ReadonlyMap<string, ObservedWorkload>): Promise<void> {
    const managed = await this.driver.list().then((l) => l.map((n) => n.id), (err: Error) => {
      this.logger.warn({ error: err.message }, 'listing networks failed');
      return null;
    });
    if (!managed) return;
    const plan = planNetworks(this.node, blueprints, managed, workloads);
    // Removed first: a network renamed by an upgrade frees its listen port for its successor.
    for (const id of plan.remove) {
      this.logger.info({ network: id }, 'removing network no blueprint declares');
      await this.driver.remove(id).catch((err: Error) => this.logger.warn({ network: id, error: err.message }, 'network remove failed'));
    }
    // One failing network (a key sealed to another node, a busy port, a name held by another) does not hold up the others.
    const ready = new Set<string>();
    for (const spec of plan.ensure) {
      await this.driver.ensure(spec).then(
        () => ready.add(spec.id),
        (err: Error) => this.logger.warn({ blueprint: spec.blueprint, network: spec.network, error: err.message }, 'network ensure failed'),
      );
    }
    for (const { spec, vm } of plan.attachVm.filter((a) => ready.has(a.spec.id))) {
      await this.driver.attachVm(spec, vm).catch((err: Error) => this.logger.warn(
        { blueprint: spec.blueprint, network: spec.network, workload: vm.workload, error: err.message }, 'making a VM\'s bridge failed'));
    }
    for (const { spec, container } of plan.attach.filter((a) => ready.has(a.spec.id))) {
      await this.driver.attachContainer(spec, container).catch((err: Error) => this.logger.warn(
        { blueprint: spec.blueprint, network: spec.network, workload: container.workload, error: err.message }, 'joining a container to its network failed'));
    }
  }
}
