// What the tests of `zone cluster` share: running commands and the CLI, and a teardown
// that leaves nothing of a cluster behind even when a test failed half-way.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeWorkloadFirewall } from '../../appliance/firewall/firewall.ts';
import { removeNodeContainers, type ClusterState } from '../../cli/cluster/grid.ts';

export const run = promisify(execFile);
export const sh = async (...cmd: string[]) => (await run(cmd[0]!, cmd.slice(1))).stdout;
export const zone = (...args: string[]) => run('node', ['--import', 'tsx', 'cli/zone.ts', ...args], { timeout: 280_000 });

/** `zone cluster down`, then whatever it could not reach: containers, firewall tables, appliances, namespaces. */
export async function tearDownCluster(name: string, dir: string, state: ClusterState | null): Promise<void> {
  if (existsSync(join(dir, 'cluster.json'))) await zone('cluster', 'down', '--name', name, '--dir', dir).catch(() => undefined);
  if (state) await removeNodeContainers(state.nodes.flatMap((n) => (n.id ? [n.id] : []))).catch(() => undefined);
  for (const n of state?.nodes ?? []) if (n.id) await removeWorkloadFirewall(n.id).catch(() => undefined);
  for (const n of state?.nodes ?? []) if (n.pid) { try { process.kill(n.pid, 'SIGKILL'); } catch { /* already gone */ } }
  for (const ns of (await sh('ip', 'netns', 'list')).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`zcl-${name}-`))) {
    await sh('ip', 'netns', 'del', ns).catch(() => undefined);
  }
}
