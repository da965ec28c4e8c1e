// zone apply FILE: (signs,) submits, then follows the node until every workload runs
// or has failed. Exit 0 when all run, 1 otherwise (or when the node refuses it).
import type { Command } from 'commander';
import type { BlueprintStatus, SubmitResult, WorkloadStatus } from '../../appliance/types.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { validateBlueprint } from '../../blueprints/parse.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { readBlueprintFile } from '../blueprint-file.ts';
import { ApiError, NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action, CliFailure, EXIT, inFile } from '../output.ts';

const collect = (value: string, previous: string[]) => [...previous, value];
/** States after which apply stops waiting for a workload; only `running` is success. */
const SETTLED = new Set(['running', 'failed', 'crashloop', 'exited']);
const RESYNC_MS = 2000;

function workloadLine(w: WorkloadStatus): string {
  const extra = [w.restarts ? `restarts ${w.restarts}` : '', w.lastError ?? ''].filter(Boolean).join(', ');
  return `  ${w.workload.padEnd(20)} ${w.kind.padEnd(9)} ${w.state}${extra ? ` (${extra})` : ''}`;
}

/** One line per workload: redrawn in place on a terminal, printed when it changes otherwise. */
class Progress {
  private drawn = 0;
  private readonly printed = new Map<string, string>();
  constructor(private readonly out: NodeJS.WriteStream) {}

  show(workloads: WorkloadStatus[]): void {
    const lines = workloads.map(workloadLine);
    if (this.out.isTTY) {
      // Blank rows clear what a longer previous drawing left (workloads removed meanwhile).
      const rows = [...lines, ...Array<string>(Math.max(0, this.drawn - lines.length)).fill('')];
      this.out.write((this.drawn ? `\x1b[${this.drawn}A` : '') + rows.map((l) => `\x1b[2K${l}\n`).join(''));
      this.drawn = rows.length;
      return;
    }
    workloads.forEach((w, i) => {
      if (this.printed.get(w.workload) !== lines[i]) this.out.write(lines[i] + '\n');
      this.printed.set(w.workload, lines[i]!);
    });
  }
}

/** The blueprint's status, or null once a tombstoned one is gone. */
async function current(client: NodeClient, accepted: SubmitResult, signal: AbortSignal): Promise<BlueprintStatus | null> {
  try {
    return await client.blueprint(accepted.name, accepted.owner, signal);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** Waits (woken by the node's events, re-reading at least every 2 s) until every workload settles; true when all run. */
export async function followApply(client: NodeClient, accepted: SubmitResult, timeoutMs: number): Promise<boolean> {
  const progress = new Progress(process.stdout);
  const stop = new AbortController();
  let wake: () => void = () => undefined;
  const events = client.events({ blueprint: accepted.name, follow: true, signal: stop.signal }, () => { wake(); })
    .catch(() => undefined); // the status reads below report an unreachable node
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      // Bounded by what is left of --timeout: a node gone mid-answer would hold a read for undici's 300 s.
      const bp = await current(client, accepted, AbortSignal.timeout(Math.max(1000, deadline - Date.now())));
      if (bp && bp.version !== accepted.version) throw new CliFailure(`${accepted.name}: version ${bp.version} was applied meanwhile; stopped following v${accepted.version}`);
      const workloads = bp?.workloads ?? [];
      progress.show(workloads);
      if (accepted.deleted ? workloads.length === 0 : workloads.every((w) => SETTLED.has(w.state))) {
        return workloads.every((w) => w.state === 'running');
      }
      if (Date.now() >= deadline) {
        process.stderr.write(`zone: gave up waiting after ${Math.round(timeoutMs / 1000)} s; the node keeps working on it (zone status ${accepted.name})\n`);
        return false;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(RESYNC_MS, Math.max(0, deadline - Date.now())));
        wake = () => { clearTimeout(timer); resolve(); };
      });
    }
  } finally {
    stop.abort();
    await events;
  }
}

export function register(program: Command): void {
  program
    .command('apply')
    .description('submit a blueprint to a node, then follow it until every workload runs (exit 0) or fails (exit 1)')
    .argument('<file>', 'the blueprint (YAML or JSON); - for stdin (YAML)')
    .option(...nodeOption)
    .option('--key <keyfile>', 'sign with this key first (repeat for several signers)', collect, [])
    .option('--detach', 'return once the node has accepted it')
    .option('--timeout <seconds>', 'stop following after this long', '300')
    .action(action(async (file: string, opts: { node?: string; key: string[]; detach?: boolean; timeout: string }) => {
      const timeout = Number(opts.timeout);
      if (!(timeout > 0)) throw new CliFailure(`--timeout: "${opts.timeout}" is not a number of seconds`, EXIT.usage);
      const client = new NodeClient(nodeUrl(opts.node), opts.key[0]);
      const input = await readBlueprintFile(file);
      let bp = inFile(file, () => validateBlueprint(input.value));
      for (const keyFile of opts.key) bp = signBlueprint(bp, readSigningKey(keyFile).secretKey);
      const accepted = await client.submit(bp);
      process.stdout.write(accepted.deleted
        ? `${accepted.name}: tombstone v${accepted.version} accepted\n`
        : `${accepted.name}: v${accepted.version} accepted\n`);
      if (opts.detach) return;
      const ok = await followApply(client, accepted, timeout * 1000);
      if (!ok) throw new CliFailure(`${accepted.name}: not every workload is running (zone status ${accepted.name}; zone logs ${accepted.name}/WORKLOAD)`);
      process.stdout.write(accepted.deleted ? `${accepted.name}: removed\n` : `${accepted.name}: all workloads running\n`);
    }));
}
