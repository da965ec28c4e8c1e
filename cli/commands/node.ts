// zone node: who a node is, its keys, drivers, capacity and software release.
import type { Command } from 'commander';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action } from '../output.ts';
import type { ReleaseInfo } from '../../appliance/types.ts';

const GIB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GIB).toFixed(1)} GiB`;

export function register(program: Command): void {
  program
    .command('node')
    .description('show the node: identity, public keys, drivers and capacity')
    .option(...nodeOption)
    .option('--json', 'print the API answer as JSON')
    .action(action(async (opts: { node?: string; json?: boolean }) => {
      const info = await new NodeClient(nodeUrl(opts.node)).node();
      if (opts.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      const { total, reserved, free } = info.capacity;
      const lines = [
        `node      ${info.id}`,
        `version   ${info.version} (up ${info.uptimeSeconds} s)${releaseOf(info.release)}`,
        ...lastUpgradeOf(info.release),
        `signing   ${info.signingKey}`,
        `box key   ${info.boxKey}   (zone seal --node-key ...)`,
        ...info.drivers.map((d) => `driver    ${d.kind.padEnd(10)} ${d.available ? `available ${d.version ?? ''}`.trim() : `UNAVAILABLE: ${d.reason ?? 'no reason'}`}${capabilitiesOf(d)}`),
        `cpus      total ${total.cpus}, reserved ${reserved.cpus}, free ${free.cpus}`,
        `memory    total ${gib(total.memoryBytes)}, reserved ${gib(reserved.memoryBytes)}, free ${gib(free.memoryBytes)}`,
        `disk      total ${gib(total.diskBytes)}, reserved ${gib(reserved.diskBytes)}, free ${gib(free.diskBytes)}`,
        ...(info.volumes ? [`volumes   ${info.volumes.count}, size ${gib(info.volumes.sizeBytes)}, used ${gib(info.volumes.usedBytes)}`] : []),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }));
}

/** `, previous 0.1.0, supervised` after the version. */
function releaseOf(release: ReleaseInfo | undefined): string {
  if (!release) return '';
  return `${release.previous ? `, previous ${release.previous}` : ''}${release.supervised ? ', supervised' : ', no supervisor (cannot take releases)'}`;
}

/** The last upgrade's outcome, one line. */
function lastUpgradeOf(release: ReleaseInfo | undefined): string[] {
  const last = release?.lastUpgrade;
  if (!last) return [];
  return [`upgrade   ${last.from} -> ${last.to} ${last.outcome === 'succeeded' ? 'SUCCEEDED' : 'ROLLED BACK'} at ${last.at} (${last.seconds} s): ${last.reason}`];
}

/** What a workload driver declares it can do, as `  (attach, mount)`; nothing for the others. */
function capabilitiesOf(driver: { capabilities?: object }): string {
  const names = Object.entries(driver.capabilities ?? {}).filter(([, on]) => on === true).map(([name]) => name);
  return names.length > 0 ? `  (${names.join(', ')})` : '';
}
