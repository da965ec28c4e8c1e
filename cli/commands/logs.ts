// zone logs NAME/WORKLOAD: a workload's output.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action, CliFailure, EXIT } from '../output.ts';

export function register(program: Command): void {
  program
    .command('logs')
    .description("print a workload's output (stdout and stderr)")
    .argument('<target>', 'BLUEPRINT/WORKLOAD')
    .option(...nodeOption)
    .option('-f, --follow', 'keep printing new output')
    .option('--tail <lines>', 'only the last lines')
    .option('--owner <key>', 'the owner (ed25519:...) when several owners use the name')
    .action(action(async (target: string, opts: { node?: string; follow?: boolean; tail?: string; owner?: string }) => {
      const m = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(target);
      if (!m) throw new CliFailure(`"${target}" is not BLUEPRINT/WORKLOAD (e.g. video-pipeline/camera)`, EXIT.usage);
      const tail = opts.tail === undefined ? undefined : Number(opts.tail);
      if (tail !== undefined && (!Number.isSafeInteger(tail) || tail < 0)) throw new CliFailure(`--tail: "${opts.tail}" is not a number of lines`, EXIT.usage);
      const stream = await new NodeClient(nodeUrl(opts.node)).logs(m[1]!, m[2]!, {
        follow: opts.follow ?? false, ...(tail !== undefined ? { tail } : {}), ...(opts.owner ? { owner: opts.owner } : {}),
      });
      await pipeline(Readable.fromWeb(stream as WebReadableStream<Uint8Array>), process.stdout, { end: false });
    }));
}
