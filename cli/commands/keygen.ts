// zone keygen: a new ed25519 signing key pair for blueprint authors.
import type { Command } from 'commander';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { action } from '../output.ts';

export const DEFAULT_KEY_FILE = 'zone-signing-key.json';

export function register(program: Command): void {
  program
    .command('keygen')
    .description('create a signing key file (mode 0600) and print its public key')
    .option('--out <file>', 'where to write the key file (never overwritten)', DEFAULT_KEY_FILE)
    .action(action((opts: { out: string }) => {
      const pair = generateSigningKeyPair();
      writeSigningKey(opts.out, pair);
      process.stdout.write(`${pair.publicKey}\n`);
      process.stderr.write(`wrote ${opts.out} (mode 0600); give the public key to the nodes' trust policies\n`);
    }));
}
