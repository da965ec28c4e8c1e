// What the web console reaches inside this node's workloads, for their owner only: a
// terminal (a shell in a container, a VM's serial console) and each workload's CPU and
// memory over the last hour, sampled from the drivers (docker stats, libvirt domain info).
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Driver, TerminalOptions, TerminalSession } from '../drivers/contract.ts';
import { workloadId } from '../drivers/names.ts';
import { ZoneError } from '../lib/errors.ts';
import type { BlueprintStatus, ConsoleAccess, UsageSample, WorkloadUsageSeries } from './types.ts';

/** Default sampling period and how long samples are kept. */
export const USAGE_PERIOD_MS = 15_000;
export const USAGE_WINDOW_MS = 60 * 60_000;
/**
 * Workloads sampled at once: dockerd answers a stats call in about a second on a busy
 * machine, and 100 at once (every container of a deploy) held up its creates and starts.
 */
const SAMPLES_AT_ONCE = 4;

export interface ConsoleSettings {
  node: string;
  drivers: ReadonlyMap<string, Driver>;
  /** The blueprints here and their workloads' states (the appliance's listBlueprints). */
  blueprints: () => BlueprintStatus[];
  /** The node policy's `terminals`: owners may open terminals into their own workloads. */
  terminals: boolean;
  logger: Logger;
  /** Sampling period (tests shorten it). */
  usagePeriodMs?: number;
  clock?: () => number;
}

interface Series extends WorkloadUsageSeries {
  owner: string;
  /** The last raw CPU reading, for the rate between two samples. */
  last: { at: number; cpuSeconds: number } | null;
}

export class WorkloadConsole implements ConsoleAccess {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;
  private readonly clock: () => number;

  constructor(private readonly settings: ConsoleSettings) {
    this.clock = settings.clock ?? Date.now;
  }

  async openTerminal(owner: string, blueprint: string, workload: string, size: TerminalOptions): Promise<TerminalSession> {
    // The same answer whether the workload is another owner's or not there at all.
    const status = this.settings.blueprints().find((b) => b.owner === owner && b.name === blueprint && !b.deleted)?.workloads.find((w) => w.workload === workload);
    if (!status) throw new ZoneError('NOT_FOUND', `no workload ${blueprint}/${workload} of yours on this node`, '/params/workload');
    if (!this.settings.terminals) throw new ZoneError('POLICY', 'terminals are not allowed by this node\'s policy (policy.terminals is false)', '/params/workload');
    if (status.state !== 'running') throw new ZoneError('CONFLICT', `${blueprint}/${workload} is ${status.state}: a terminal opens only while it runs`, '/params/workload');
    const driver = this.settings.drivers.get(status.kind);
    // What the driver declares: a shell through exec where it has one, else its serial console.
    const exec = driver?.exec?.bind(driver);
    const open = exec ? (id: string) => exec(id, size) : driver?.capabilities.console ? driver.console?.bind(driver) : undefined;
    if (!open) throw new ZoneError('UNAVAILABLE', `the ${status.kind} driver of this node has no terminal`);
    try {
      return await open(workloadId(this.settings.node, owner, blueprint, workload));
    } catch (err) {
      if (err instanceof ZoneError) throw err;
      throw new ZoneError('UNAVAILABLE', `no terminal into ${blueprint}/${workload}: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  usage(owner: string): WorkloadUsageSeries[] {
    return [...this.series.values()].filter((s) => s.owner === owner).map(({ blueprint, workload, kind, samples }) => ({ blueprint, workload, kind, samples: [...samples] }));
  }

  latestUsage(): Array<{ owner: string; blueprint: string; workload: string; sample: UsageSample }> {
    return [...this.series.values()].flatMap((s) => (s.samples.length > 0 ? [{ owner: s.owner, blueprint: s.blueprint, workload: s.workload, sample: s.samples.at(-1)! }] : []));
  }

  /** Samples every period until stop(). */
  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.sampling ??= this.sample().catch((err: unknown) => this.settings.logger.warn({ err }, 'usage sampling failed')).finally(() => { this.sampling = null; });
    };
    tick();
    this.timer = setInterval(tick, this.settings.usagePeriodMs ?? USAGE_PERIOD_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sampling;
  }

  /** One sample of every running workload; series of workloads no longer here are dropped. */
  async sample(): Promise<void> {
    const running = this.settings.blueprints().flatMap((b) => b.workloads.filter((w) => w.state === 'running'));
    const present = new Set<string>();
    const limit = pLimit(SAMPLES_AT_ONCE);
    await Promise.all(running.map((w) => limit(async () => {
      const id = workloadId(this.settings.node, w.owner, w.blueprint, w.workload);
      present.add(id);
      const usage = await this.settings.drivers.get(w.kind)?.usage?.(id).catch(() => null);
      if (!usage) return;
      const now = this.clock();
      let s = this.series.get(id);
      if (!s) this.series.set(id, s = { owner: w.owner, blueprint: w.blueprint, workload: w.workload, kind: w.kind, samples: [], last: null });
      // A restart starts the CPU count again: no rate across it.
      const rate = s.last && usage.cpuSeconds >= s.last.cpuSeconds && now > s.last.at ? (usage.cpuSeconds - s.last.cpuSeconds) / ((now - s.last.at) / 1000) : null;
      s.last = { at: now, cpuSeconds: usage.cpuSeconds };
      if (rate !== null) s.samples.push({ at: new Date(now).toISOString(), cpu: rate, memoryBytes: usage.memoryBytes });
      const oldest = new Date(now - USAGE_WINDOW_MS).toISOString();
      while (s.samples.length > 0 && s.samples[0]!.at < oldest) s.samples.shift();
    })));
    // Workloads stopped for now keep their hour; removed ones go.
    const here = new Set(this.settings.blueprints().flatMap((b) => b.workloads.map((w) => workloadId(this.settings.node, w.owner, w.blueprint, w.workload))));
    for (const id of this.series.keys()) if (!here.has(id)) this.series.delete(id);
  }
}
