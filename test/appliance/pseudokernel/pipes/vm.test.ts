// Pipes with a VM at one end: the real Docker and libvirt drivers (QEMU under TCG), a
// real nats-server, the PipeRunner between them. Run it under `flock /tmp/zone-vm.lock`.
import t, { type Test } from 'tap';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { specHash } from '../../../../blueprints/normalize.ts';
import type { Pipe, Workload } from '../../../../blueprints/schema.ts';
import type { Driver, DriverContext, WorkloadSpec } from '../../../../drivers/contract.ts';
import { DockerDriver } from '../../../../drivers/docker/driver.ts';
import { LibvirtDriver } from '../../../../drivers/libvirt/driver.ts';
import { removeNodeContainers } from '../../../../cli/cluster/grid.ts';
import { desiredWorkloads } from '../../../../appliance/engine/desired.ts';
import { workloadId } from '../../../../drivers/names.ts';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { localPipeEnds, pipeIdentity, type LocalPipeEnd, type PipeIdentity } from '../../../../blueprints/pipes.ts';
import { PipeRunner, type PipeStats } from '../../../../appliance/pseudokernel/pipes/runner.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const NODE = `pv${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;
const LINES = 100_000;
const BOOT_MS = 120_000;
const dir = mkdtempSync('/var/tmp/zone-pipes-vm-');
chmodSync(dir, 0o711); // qemu walks to the initrd and binds its sockets under the data dir
const logs: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
const ctx: DriverContext = { node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } };
const containers = new DockerDriver(ctx, { removeGraceMs: 1000 });
const vms = new LibvirtDriver(ctx, { removeGraceMs: 0 });
const [port] = (await freeLoopbackPorts(1)) as [number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: NODE, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
await server.start();
const nc = await server.connect();
const kinds = new Map<string, Workload['kind']>();
const driverOf = (workload: string): Driver => (kinds.get(workload) === 'vm' ? vms : containers);
const runner = new PipeRunner({ nc, logger, resyncMs: 1000, locate: (end) => ({ driver: driverOf(end.workload), id: workloadId(NODE, end.owner, end.blueprint, end.workload) }) });
const ends: LocalPipeEnd[] = [];
const vmIds: string[] = [];

t.teardown(async () => {
  await runner.stop();
  for (const id of vmIds) await vms.remove(id).catch(() => undefined);
  await vms.close();
  await containers.close();
  await removeNodeContainers([NODE]);
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const seqText = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('');

/** The specs of a blueprint as the engine makes them (pipes included); `holdStdout`'s stdout is the test's to read from its first byte. */
async function applyPipes(blueprint: string, workloads: Workload[], pipes: Pipe[], holdStdout: string): Promise<Map<string, WorkloadSpec>> {
  for (const w of workloads) kinds.set(w.name, w.kind);
  const document = { name: blueprint, version: 1, owner: OWNER, node: NODE, workloads, pipes };
  const specs = desiredWorkloads(NODE, [{ owner: OWNER, name: blueprint, version: 1, deleted: false, acceptedAt: new Date().toISOString(), document }]).map((s) => {
    if (s.definition.kind === 'vm') vmIds.push(s.id);
    if (s.workload !== holdStdout) return s;
    const definition = { ...s.definition, stdout: 'pipe' as const };
    return { ...s, definition, specHash: specHash(definition) };
  });
  ends.push(...localPipeEnds(NODE, document));
  await runner.setEnds(ends);
  return new Map(specs.map((s) => [s.workload, s]));
}

async function statsOf(pipe: PipeIdentity, role: LocalPipeEnd['role']): Promise<PipeStats> {
  const stats = (await runner.stats()).find((s) => s.pipe === pipe.id && s.role === role);
  if (!stats) throw new Error(`no stats for the ${role} end of ${pipe.from} -> ${pipe.to}`);
  return stats;
}

/** The stdout of the incarnation `ensure` starts, from its first byte to its end. */
async function startReadingStdout(t: Test, spec: WorkloadSpec): Promise<{ startedAt: string | null; output: Promise<Buffer> }> {
  const driver = driverOf(spec.workload);
  const started = await driver.ensure(spec);
  const io = await driver.attach(spec.id, { stdin: false, replay: true });
  t.equal(io.exact, true, `${spec.workload}'s stdout is held from its start`);
  return { startedAt: started.startedAt, output: buffer(io.stdout) };
}

const container = (name: string, command: string[]): Workload => ({ name, kind: 'container', image: 'zone/busybox', command, restart: 'never', resources: { memory: '128Mi' } });
const vm = (name: string, command: string[]): Workload => ({ name, kind: 'vm', image: 'zone/busybox', command, restart: 'never', resources: { memory: '128Mi' } });

t.test('seq in a container piped into sort -n | tail -1 in a VM, the VM killed halfway and booted again: 100000, and the input committed', async (t) => {
  // The counter stops halfway until the test says go, so the kill lands in the middle.
  const specs = await applyPipes('tovm', [
    container('counter', ['sh', '-c', `seq 1 ${LINES / 2}; read go; seq ${LINES / 2 + 1} ${LINES}`]),
    vm('sorter', ['sh', '-c', 'sort -n | tail -1']),
  ], [{ from: 'counter.stdout', to: 'sorter.stdin' }], 'sorter');
  const pipe = pipeIdentity(OWNER, `${NODE}/tovm/counter.stdout`, `${NODE}/tovm/sorter.stdin`);
  const sorter = specs.get('sorter')!;
  const half = Buffer.byteLength(seqText(1, LINES / 2));

  const first = await startReadingStdout(t, sorter);
  await containers.ensure(specs.get('counter')!);
  await waitFor(async () => (await statsOf(pipe, 'consume')).bytesConsumed === half, { timeoutMs: BOOT_MS, what: 'the first half given to the VM' });
  await vms.stop(sorter.id, 0);
  t.equal((await first.output).length, 0, 'the killed VM printed nothing');
  t.ok((await statsOf(pipe, 'consume')).lagMessages > 0, 'its input is not committed');

  const second = await startReadingStdout(t, sorter);
  t.not(second.startedAt, first.startedAt, 'another incarnation');
  await waitFor(async () => (await statsOf(pipe, 'consume')).bytesConsumed === 2 * half, { timeoutMs: BOOT_MS, what: 'the first half given again to the new boot' });
  const counterStdin = await containers.attach(specs.get('counter')!.id, { stdin: true, stdout: false });
  counterStdin.stdin.end('go\n');

  t.equal((await second.output).toString(), `${LINES}\n`);
  t.match(await waitFor(async () => {
    const o = await vms.inspect(sorter.id);
    return o?.state === 'exited' && o;
  }, { timeoutMs: 30_000, what: 'the VM powered off' }), { exitCode: 0, startedAt: second.startedAt });
  await waitFor(async () => (await statsOf(pipe, 'consume')).lagMessages === 0, { timeoutMs: 30_000, what: 'the input committed' });
  t.equal((await statsOf(pipe, 'consume')).bytesConsumed, half + Buffer.byteLength(seqText(1, LINES)), 'half to the killed boot, all to the next');
});

t.test('seq in a VM piped into a container: the container gets every line, in order, and EOF', async (t) => {
  const specs = await applyPipes('fromvm', [
    vm('generator', ['seq', '1', String(LINES)]),
    container('keeper', ['cat']),
  ], [{ from: 'generator.stdout', to: 'keeper.stdin' }], 'keeper');
  const pipe = pipeIdentity(OWNER, `${NODE}/fromvm/generator.stdout`, `${NODE}/fromvm/keeper.stdin`);
  const keeper = await startReadingStdout(t, specs.get('keeper')!);
  await vms.ensure(specs.get('generator')!);
  const output = await keeper.output;
  t.equal(output.length, Buffer.byteLength(seqText(1, LINES)), 'as many bytes');
  t.equal(output.toString(), seqText(1, LINES), 'the same bytes');
  await waitFor(async () => (await statsOf(pipe, 'consume')).lagMessages === 0, { timeoutMs: 30_000, what: 'the input committed' });
  t.match(await statsOf(pipe, 'produce'), { bytesProduced: output.length, error: null });
  t.same(logs.filter((l) => Number(l.level) >= 40), [], 'no warnings');
});
