// zone network plan: the `networks:` section of every node of a grid, so that nobody
// splits ranges, generates WireGuard keys or seals them by hand.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Value } from '@sinclair/typebox/value';
import { stringify } from 'yaml';
import { ZoneError } from '../../lib/errors.ts';
import { Name } from '../../blueprints/schema.ts';
import { GridNodesFile, planGrid } from '../grid-plan.ts';
import { readBlueprintFile } from '../blueprint-file.ts';
import { action, CliFailure, EXIT } from '../output.ts';

interface PlanOptions {
  nodes: string;
  name: string;
  owner: string;
  blueprint: string;
  range: string;
  subnetPrefix: string;
  keepalive?: string;
  json?: boolean;
  outDir?: string;
}

const integer = (value: string, what: string) => {
  if (!/^[0-9]{1,5}$/.test(value)) throw new CliFailure(`${what} must be a whole number, got "${value}"`, EXIT.usage);
  return Number(value);
};

export function register(program: Command): void {
  const network = program.command('network').description('WireGuard overlay networks between nodes');
  network
    .command('plan')
    .description('print each node\'s networks: section for one overlay (subnet, sealed key, peers)')
    .requiredOption('--nodes <file>', 'YAML/JSON: nodes: [{ id, boxKey, endpoint: host:port }]')
    .requiredOption('--name <network>', 'the network name blueprints use')
    .requiredOption('--owner <key>', 'the owner (ed25519:...) of the blueprints these sections go into: each key opens only in that owner\'s blueprints')
    .option('--blueprint <name>', 'the blueprint the sections go into (each node\'s key opens only there); * for any of the owner\'s', '*')
    .requiredOption('--range <cidr>', 'the overlay range, split between the nodes (e.g. 10.88.0.0/16)')
    .option('--subnet-prefix <bits>', 'length of each node\'s subnet', '24')
    .option('--keepalive <seconds>', 'persistent keepalive for every peer (nodes behind NAT)')
    .option('--json', 'print JSON instead of YAML')
    .option('--out-dir <dir>', 'write DIR/NODE_ID.yaml per node (its networks: section, to append to that node\'s blueprint) instead of printing')
    .addHelpText('after', '\nEach node gets a fresh WireGuard key, sealed to its box key and bound to the owner, the blueprint and\nnetworks/NAME/wireguard/privateKey: only that node opens it, and only in that place.')
    .action(action(async (opts: PlanOptions) => {
      if (!Value.Check(Name, opts.name)) throw new CliFailure(`--name "${opts.name}" is not a network name (lower-case letters, digits and dashes)`, EXIT.usage);
      const file = await readBlueprintFile(opts.nodes);
      if (!Value.Check(GridNodesFile, file.value)) {
        const e = Value.Errors(GridNodesFile, file.value).First();
        throw new CliFailure(`${opts.nodes}: ${e?.path || '/'}: ${e?.message ?? 'invalid'} (expected nodes: [{ id, boxKey, endpoint }])`);
      }
      let plan;
      try {
        plan = planGrid({
          network: opts.name,
          owner: opts.owner,
          blueprint: opts.blueprint,
          ipRange: opts.range,
          nodes: file.value.nodes,
          subnetPrefix: integer(opts.subnetPrefix, '--subnet-prefix'),
          ...(opts.keepalive ? { persistentKeepalive: integer(opts.keepalive, '--keepalive') } : {}),
        });
      } catch (e) {
        if (e instanceof RangeError) throw new CliFailure(e.message);
        if (e instanceof ZoneError) throw new CliFailure(e.message, EXIT.usage);
        throw e;
      }
      const byNode = Object.fromEntries(plan.map((p) => [p.node, { networks: [p.network] }]));
      if (opts.outDir) {
        await mkdir(opts.outDir, { recursive: true });
        // 0600: the keys are sealed, but nobody else needs to read a node's section.
        for (const [node, section] of Object.entries(byNode)) {
          await writeFile(join(opts.outDir, `${node}.yaml`), stringify(section, { lineWidth: 0 }), { mode: 0o600 });
        }
        process.stdout.write(`wrote ${plan.length} networks: sections to ${opts.outDir}/NODE_ID.yaml\n`);
        return;
      }
      process.stdout.write(opts.json ? `${JSON.stringify(byNode, null, 2)}\n` : stringify(byNode, { lineWidth: 0 }));
    }));
}
