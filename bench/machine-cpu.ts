// The whole machine's CPU time (every process and the kernel, all cores), from /proc/stat,
// and by process from /proc/PID/stat: on a machine of few cores, a transfer that keeps
// them busy moves at most cores / (machine CPU per byte), whichever processes spend it.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** CPU time the machine has spent since boot (all cores, every state but idle and iowait), in ms. */
export function machineCpuMs(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is in user already)
  const busy = fields.slice(0, 8).reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + v!), 0);
  return busy * 10; // USER_HZ is 100 on Linux
}

/** What /proc/PID/stat says of a process: its parent, its name, and the CPU it used (user + system, ms). */
export interface ProcessStat { ppid: number; comm: string; cpuMs: number }

/** A process's /proc/PID/stat; null once it is gone. */
export function processStat(pid: number): ProcessStat | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The name is in parentheses and may hold spaces or ')': the fields follow the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return { ppid: Number(fields[1]), comm: stat.slice(stat.indexOf('(') + 1, close), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
}

/** Every process's /proc/PID/stat, by PID. */
export function processStats(): Map<number, ProcessStat> {
  const stats = new Map<number, ProcessStat>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    const stat = Number.isInteger(pid) ? processStat(pid) : null;
    if (stat) stats.set(pid, stat);
  }
  return stats;
}

interface Sample { atMs: number; cpuMs: number; processes: Map<number, { name: string; cpuMs: number }> | null }

/**
 * Samples the machine's CPU every `intervalMs` while it runs (and each process's, with
 * `byProcess`), so that what was spent between two wall-clock stamps taken elsewhere (a
 * container's, another process's) can be read afterwards.
 */
export class CpuSampler {
  private readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;
  /** A node process is named by its script too: an appliance, a CLI, a benchmark. */
  private readonly names = new Map<number, string>();

  constructor(options: { intervalMs?: number; byProcess?: boolean } = {}) {
    const sample = () => this.samples.push({ atMs: Date.now(), cpuMs: machineCpuMs(), processes: options.byProcess ? this.processes() : null });
    sample();
    this.timer = setInterval(sample, options.intervalMs ?? 50);
  }

  /** The busy share of all cores (0..1) between two wall-clock times in ms; null when the samples do not span them. */
  busyBetween(fromMs: number, toMs: number): number | null {
    const span = this.span(fromMs, toMs);
    return span && (span.last.cpuMs - span.first.cpuMs) / ((span.last.atMs - span.first.atMs) * availableParallelism());
  }

  /**
   * CPU ms by process name between two wall-clock times, largest first. A process that
   * started between counts whole; one that ended between, up to its last sample (what it
   * spent after that, less than one interval, is missed).
   */
  byProcessBetween(fromMs: number, toMs: number): [string, number][] {
    const span = this.span(fromMs, toMs);
    if (!span?.first.processes) return [];
    const latest = new Map<number, { name: string; cpuMs: number }>();
    for (const sample of this.samples.slice(this.samples.indexOf(span.first) + 1, this.samples.indexOf(span.last) + 1)) {
      for (const [pid, p] of sample.processes ?? []) latest.set(pid, p);
    }
    const spent = new Map<string, number>();
    for (const [pid, p] of latest) {
      const delta = p.cpuMs - (span.first.processes.get(pid)?.cpuMs ?? 0);
      if (delta > 0) spent.set(p.name, (spent.get(p.name) ?? 0) + delta);
    }
    return [...spent.entries()].sort((a, b) => b[1] - a[1]);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private span(fromMs: number, toMs: number): { first: Sample; last: Sample } | null {
    const first = [...this.samples].reverse().find((s) => s.atMs <= fromMs);
    const last = this.samples.find((s) => s.atMs >= toMs);
    return first && last && last.atMs > first.atMs ? { first, last } : null;
  }

  private processes(): Map<number, { name: string; cpuMs: number }> {
    return new Map([...processStats()].map(([pid, p]) => [pid, { name: this.nameOf(pid, p.comm), cpuMs: p.cpuMs }]));
  }

  private nameOf(pid: number, comm: string): string {
    if (comm !== 'node') return comm;
    let name = this.names.get(pid);
    if (name === undefined) {
      const args = (() => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        } catch {
          return [];
        }
      })();
      const script = args.find((a) => /\.(ts|js|mjs)$/.test(a) && !a.includes('node_modules'));
      name = script ? `node ${script.split('/').slice(-2).join('/')}` : 'node';
      this.names.set(pid, name);
    }
    return name;
  }
}
