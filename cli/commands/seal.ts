// zone seal: encrypts a secret to a node's box key, for `sealed:` blueprint fields,
// bound to the one place it may be opened (owner, node, blueprint, field).
import type { Command } from 'commander';
import { sealSecret } from '../../blueprints/seal.ts';
import { action, CliFailure, EXIT, readInput } from '../output.ts';
import { ZoneError } from '../../lib/errors.ts';

interface SealOptions { nodeKey: string; owner: string; node: string; blueprint: string; field: string; value?: string }

export function register(program: Command): void {
  program
    .command('seal')
    .description('seal a secret to a node (its id and box key are in GET /v1/node) for one place; prints sealed:v2:BASE64')
    .requiredOption('--node-key <key>', "the node's X25519 box public key (base64)")
    .requiredOption('--node <id>', 'the node id: the value opens only on that node')
    .requiredOption('--owner <key>', 'the owner (ed25519:...): the value opens only in that owner\'s blueprints')
    .requiredOption('--blueprint <name>', 'the blueprint it goes into, or * for any of the owner\'s')
    .requiredOption('--field <path>', 'where it goes: workloads/NAME/env/VAR, networks/NAME/wireguard/privateKey, or * for any field; registries/HOST/password for the node config\'s registries (--owner: the node\'s signing key, --blueprint \'*\')')
    .option('--value <secret>', 'the secret (else read from stdin, one trailing newline dropped)')
    .addHelpText('after', '\nA sealed value copied into another blueprint, owner, node or field is refused there.')
    .action(action(async (opts: SealOptions) => {
      const clear = opts.value ?? (await readInput('-')).toString('utf8').replace(/\r?\n$/, '');
      if (!clear) throw new CliFailure('nothing to seal: give --value or the secret on stdin');
      let sealed: string;
      try {
        sealed = sealSecret(clear, opts.nodeKey, { owner: opts.owner, node: opts.node, blueprint: opts.blueprint, field: opts.field });
      } catch (err) {
        // A malformed option is a usage mistake; its message names the option's value, never the secret.
        if (err instanceof ZoneError) throw new CliFailure(`${err.field ? `--${err.field}` : '--node-key'}: ${err.message}`, EXIT.usage);
        throw err;
      }
      process.stdout.write(`${sealed}\n`);
    }));
}
