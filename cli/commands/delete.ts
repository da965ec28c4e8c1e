// zone delete NAME: a signed tombstone, the stored version + 1, removes a blueprint.
import type { Command } from 'commander';
import { readSigningKey } from '../../blueprints/keys.ts';
import { validateBlueprint } from '../../blueprints/parse.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action, CliFailure } from '../output.ts';
import { followApply } from './apply.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('delete')
    .description("delete a blueprint from a node: submits a tombstone signed with --key, then waits for its workloads to be removed")
    .argument('<name>', 'the blueprint')
    .option(...nodeOption)
    .requiredOption('--key <keyfile>', 'a key the node trusts (repeat for several signers)', collect, [])
    .option('--owner <key>', 'the owner (ed25519:...) when several owners use the name')
    .option('--detach', 'return once the node has accepted the tombstone')
    .option('--timeout <seconds>', 'stop waiting after this long', '120')
    .action(action(async (name: string, opts: { node?: string; key: string[]; owner?: string; detach?: boolean; timeout: string }) => {
      const client = new NodeClient(nodeUrl(opts.node), opts.key[0]);
      const keys = opts.key.map((k) => readSigningKey(k));
      const [stored, node] = await Promise.all([client.blueprint(name, opts.owner), client.node()]);
      if (stored.deleted) throw new CliFailure(`${name}: already deleted (tombstone v${stored.version})`);
      let tombstone = validateBlueprint({ name, version: stored.version + 1, owner: stored.owner, node: node.id, delete: true });
      for (const key of keys) tombstone = signBlueprint(tombstone, key.secretKey);
      const accepted = await client.submit(tombstone);
      process.stdout.write(`${name}: tombstone v${accepted.version} accepted\n`);
      if (opts.detach) return;
      if (!await followApply(client, accepted, Number(opts.timeout) * 1000)) throw new CliFailure(`${name}: workloads not removed yet (zone status ${name})`);
      process.stdout.write(`${name}: removed\n`);
    }));
}
