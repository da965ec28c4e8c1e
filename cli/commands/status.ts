// zone status [NAME]: what a node should run and what each workload is doing.
import type { Command } from 'commander';
import Table from 'cli-table3';
import type { BlueprintStatus } from '../../appliance/types.ts';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action } from '../output.ts';

/** "12s", "5m", "3h", "2d" since an ISO time. */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

export function statusTable(blueprints: BlueprintStatus[]): string {
  const table = new Table({
    head: ['BLUEPRINT', 'VERSION', 'WORKLOAD', 'KIND', 'STATE', 'HEALTH', 'RESTARTS', 'SINCE', 'LAST ERROR'],
    style: { head: [], border: [] },
  });
  for (const bp of blueprints) {
    if (!bp.workloads.length) table.push([bp.name, bp.version, '-', '-', bp.deleted ? 'deleted' : 'no workloads', '-', '-', age(bp.acceptedAt), '']);
    for (const w of bp.workloads) {
      table.push([bp.name, bp.version, w.workload, w.kind, w.state, w.health ?? '-', w.restarts, age(w.since), (w.lastError ?? '').slice(0, 60)]);
    }
  }
  return table.toString();
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show the blueprints of a node (or one) and the state of each workload')
    .argument('[name]', 'one blueprint')
    .option(...nodeOption)
    .option('--owner <key>', 'the owner (ed25519:...) when several owners use the name')
    .option('--json', 'print the API answer as JSON')
    .action(action(async (name: string | undefined, opts: { node?: string; owner?: string; json?: boolean }) => {
      const client = new NodeClient(nodeUrl(opts.node));
      const blueprints = name ? [await client.blueprint(name, opts.owner)] : await client.blueprints();
      if (opts.json) {
        process.stdout.write(JSON.stringify(name ? blueprints[0] : blueprints, null, 2) + '\n');
        return;
      }
      process.stdout.write(blueprints.length ? statusTable(blueprints) + '\n' : 'no blueprints on this node\n');
    }));
}
