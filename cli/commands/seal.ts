// zone seal: encrypts a secret to a node's box key, for `sealed:` blueprint fields.
import type { Command } from 'commander';
import { sealSecret } from '../../blueprints/seal.ts';
import { action, CliFailure, readInput } from '../output.ts';

export function register(program: Command): void {
  program
    .command('seal')
    .description('seal a secret to a node (its box key is in GET /v1/node); prints sealed:BASE64')
    .requiredOption('--node-key <key>', "the node's X25519 box public key (base64)")
    .option('--value <secret>', 'the secret (else read from stdin, one trailing newline dropped)')
    .action(action(async (opts: { nodeKey: string; value?: string }) => {
      const clear = opts.value ?? (await readInput('-')).toString('utf8').replace(/\r?\n$/, '');
      if (!clear) throw new CliFailure('nothing to seal: give --value or the secret on stdin');
      process.stdout.write(`${sealSecret(clear, opts.nodeKey)}\n`);
    }));
}
