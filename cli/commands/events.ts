// zone events: the node's state transitions, each with its sequence number.
import type { Command } from 'commander';
import type { ZoneEvent } from '../../appliance/types.ts';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action, CliFailure, EXIT } from '../output.ts';

export function eventLine(e: ZoneEvent): string {
  const what = e.blueprint ? `${e.blueprint}${e.workload ? `/${e.workload}` : ''}` : 'node';
  return `${String(e.seq).padStart(6)} ${e.at} ${what} ${e.from ?? '-'} -> ${e.to}: ${e.reason}`;
}

export function register(program: Command): void {
  program
    .command('events')
    .description('print the stored events, then (with -f) new ones as they happen')
    .option(...nodeOption)
    .option('-f, --follow', 'keep printing new events')
    .option('--blueprint <name>', 'only the events of this blueprint')
    .option('--after <seq>', 'only events with a greater sequence number')
    .option('--json', 'one JSON event per line')
    .action(action(async (opts: { node?: string; follow?: boolean; blueprint?: string; after?: string; json?: boolean }) => {
      const after = opts.after === undefined ? 0 : Number(opts.after);
      if (!Number.isSafeInteger(after) || after < 0) throw new CliFailure(`--after: "${opts.after}" is not a sequence number`, EXIT.usage);
      await new NodeClient(nodeUrl(opts.node)).events(
        { after, follow: opts.follow ?? false, ...(opts.blueprint ? { blueprint: opts.blueprint } : {}) },
        (e) => { process.stdout.write((opts.json ? JSON.stringify(e) : eventLine(e)) + '\n'); },
      );
    }));
}
