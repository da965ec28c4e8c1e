// zone volume ls: the volumes of a node, their size and use, who mounts them, and when a
// released one is deleted.
import type { Command } from 'commander';
import Table from 'cli-table3';
import type { VolumeStatus } from '../../appliance/types.ts';
import { formatBytes } from '../../appliance/admission.ts';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action } from '../output.ts';

export function volumeTable(volumes: VolumeStatus[]): string {
  const table = new Table({
    head: ['NAME', 'OWNER', 'BLUEPRINT', 'KIND', 'SIZE', 'USED', 'ATTACHED TO', 'STATE'],
    style: { head: [], border: [] },
  });
  for (const v of volumes) {
    table.push([v.name, `${v.owner.slice(0, 16)}...`, v.blueprint, v.kind, formatBytes(v.sizeBytes), formatBytes(v.usedBytes),
      v.attachedTo.join(', ') || '-', v.deleteAt ? `released: deleted at ${v.deleteAt}` : v.state]);
  }
  return table.toString();
}

export function register(program: Command): void {
  const volume = program.command('volume').description('the volumes of a node');
  volume
    .command('ls')
    .description('list the volumes of a node: size, used, attached to, state (pending deletions too)')
    .option(...nodeOption)
    .option('--owner <key>', 'only this owner\'s (ed25519:...)')
    .option('--json', 'print the API answer as JSON')
    .action(action(async (opts: { node?: string; owner?: string; json?: boolean }) => {
      const volumes = await new NodeClient(nodeUrl(opts.node)).volumes(opts.owner);
      process.stdout.write(opts.json ? JSON.stringify(volumes, null, 2) + '\n' : volumeTable(volumes) + '\n');
    }));
}
