// zone cluster up N [--vm] / down: a local grid on this machine, each node an appliance
// in its own network namespace (or, with --vm, a VM booted from the node image), all
// trusting one operator key.
import type { Command } from 'commander';
import { join } from 'node:path';
import { CommandError } from '../../lib/exec.ts';
import { clusterDown, clusterUp, ClusterError, NODES_FILE, ROUTE_SECRET_FILE } from '../cluster/grid.ts';
import { GRID_CA_FILE } from '../cluster/pki.ts';
import { VmNodeError } from '../cluster/vm.ts';
import { NodeImageError } from '../node-image/build.ts';
import { action, CliFailure, EXIT } from '../output.ts';

interface ClusterOptions {
  name: string;
  dir?: string;
}

const dirOf = (o: ClusterOptions) => o.dir ?? join('.zone', 'cluster', o.name);

/** Cluster failures are phrased for the user; anything else stays unexpected. */
async function asCliFailure<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof ClusterError || e instanceof CommandError || e instanceof VmNodeError || e instanceof NodeImageError) throw new CliFailure(e.message);
    if (e instanceof RangeError) throw new CliFailure(e.message, EXIT.usage);
    throw e;
  }
}

export function register(program: Command): void {
  const cluster = program.command('cluster').description('a local test grid: N nodes on this machine (needs root)');
  const common = (c: Command) => c
    .option('--name <name>', 'cluster name, 1-6 letters or digits (namespaces zcl-NAME-*)', 'local')
    .option('--dir <dir>', 'where the cluster keeps its state, keys and node data (default .zone/cluster/NAME)');

  common(cluster.command('up'))
    .description('start N nodes, each with its own namespace, data dir, identity and API')
    .argument('<n>', 'number of nodes (1-32)')
    .option('--subnet <cidr>', 'addresses of the host (first) and the nodes (11th on)', '10.213.0.0/24')
    .option('--vm', 'each node a VM booted from the node image (zone image build; built first when not cached), on a bridge')
    .action(action(async (n: string, opts: ClusterOptions & { subnet: string; vm?: boolean }) => {
      if (!/^[0-9]{1,2}$/.test(n)) throw new CliFailure(`N must be a number of nodes, got "${n}"`, EXIT.usage);
      const dir = dirOf(opts);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const state = await asCliFailure(() => clusterUp({ dir, name: opts.name, subnet: opts.subnet, count: Number(n), ...(opts.vm ? { vm: true, log } : {}) }));
      process.stdout.write(`cluster ${state.name} is up: ${state.nodes.length} nodes trusting operator key ${state.operatorKey}\n`);
      for (const node of state.nodes) {
        const where = node.vm ? `VM ${node.vm.domain} (${state.vm?.accelerator ?? 'qemu'}), console ${node.vm.console}` : `netns ${node.namespace}, data ${node.dataDir}`;
        process.stdout.write(`  n${node.index}  ${node.id}  ${node.api}  (${where})\n`);
      }
      const where = `${opts.name === 'local' ? '' : ` --name ${opts.name}`}${opts.dir ? ` --dir ${opts.dir}` : ''}`;
      process.stdout.write(`nats routes: mutual TLS with the grid CA ${join(dir, GRID_CA_FILE)} and the route password in ${join(dir, ROUTE_SECRET_FILE)}\n`);
      // The nodes listen beyond loopback, so their reads need a token of the operator key (cli/read-key.ts finds it under the default dir).
      process.stdout.write(opts.dir
        ? `reads on the nodes need a read token: export ZONE_READ_KEY=${state.operatorKey}\n`
        : 'reads on the nodes need a read token: zone commands run in this directory sign one with the operator key\n');
      process.stdout.write(`nodes file for zone network plan: ${join(dir, NODES_FILE)}\nstop it with: zone cluster down${where}\n`);
    }));

  common(cluster.command('down'))
    .description('stop the nodes and remove everything the cluster made (processes, firewall tables, containers, networks, namespaces, links, data)')
    .action(action(async (opts: ClusterOptions) => {
      const state = await asCliFailure(() => clusterDown(dirOf(opts)));
      process.stdout.write(`cluster ${state.name} is down: ${state.nodes.length} nodes removed\n`);
    }));
}
