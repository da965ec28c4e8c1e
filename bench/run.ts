// `npm run bench [NAME ...]`: runs the benchmarks one after the other (each in its own
// process, so one's engines and timers do not disturb the next) and prints what each
// measured against its baseline. Without names, all of them; the slow ones last. Each
// runs with the appliance's Node flags: several serve /zone or pipes in their own process,
// as the appliance does, and should collect garbage as it does.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { APPLIANCE_NODE_FLAGS } from '../appliance/node-flags.ts';

const BENCHMARKS = ['verify', 'reconcile', 'api', 'hostile', 'docker', 'deploy', 'volumes', 'overlay', 'network-list', 'zonefs', 'zonefs-meta', 'pipes', 'pipe-cpu', 'images', 'registries', 'libvirt', 'vm-pipes', 'vm-zonefs', 'vm-volumes', 'upgrade'] as const;

const asked = process.argv.slice(2);
const unknown = asked.filter((name) => !(BENCHMARKS as readonly string[]).includes(name));
if (unknown.length > 0) {
  process.stderr.write(`bench: no benchmark named ${unknown.join(', ')} (choose from ${BENCHMARKS.join(', ')})\n`);
  process.exit(2);
}

let failed = 0;
for (const name of asked.length > 0 ? asked : BENCHMARKS) {
  process.stdout.write(`\n== bench/${name}.ts (${new Date().toISOString()})\n`);
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const { status, signal } = spawnSync(process.execPath, [...APPLIANCE_NODE_FLAGS, '--import', 'tsx', file], { stdio: 'inherit' });
  if (status !== 0) {
    failed++;
    process.stderr.write(`bench: ${name} failed (${signal ?? `exit ${status}`})\n`);
  }
}
process.exit(failed > 0 ? 1 : 0);
