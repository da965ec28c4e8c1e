// Pipe throughput into a VM (issue 18), baseline in the same run, on one node: the real
// Docker and libvirt drivers, a local nats-server and the PipeRunner between them.
// (a) container -> container: dd of 64 MiB of zeros into `wc -c` in a container;
// (b) container -> VM: the same into `wc -c` in a VM (QEMU; TCG where KVM is missing),
//     whose stdin is a virtio-serial port;
// (c) for reference, the VM's port alone: the bench writes the 64 MiB straight into the
//     stdin the libvirt driver attaches (no pipe, no JetStream).
// The sink starts first (a VM boots) and is running with its stdin attached before the
// source starts; the time runs from the source's start to the feeder having written the
// last byte into the sink's stdin, and the sink's count is checked afterwards.
// Run (as root, with the VM lock): flock /tmp/zone-vm.lock node --import tsx bench/vm-pipes.ts
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import pino from 'pino';
import { normalizeWorkload, specHash } from '../blueprints/normalize.ts';
import type { Workload } from '../blueprints/schema.ts';
import { localPipeEnds, pipeIdentity, type LocalPipeEnd } from '../blueprints/pipes.ts';
import { desiredWorkloads } from '../appliance/engine/desired.ts';
import { NatsServer } from '../appliance/pseudokernel/nats/nats-server.ts';
import { PipeRunner } from '../appliance/pseudokernel/pipes/runner.ts';
import { removeNodeContainers } from '../cli/cluster/grid.ts';
import type { Driver, DriverContext } from '../drivers/contract.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { LibvirtDriver } from '../drivers/libvirt/driver.ts';
import { workloadId } from '../drivers/names.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';
import { waitFor } from '../test/helpers/wait.ts';

const NODE = `vpb${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const COUNT = 1024; // dd blocks of 64 KiB: 64 MiB
const BYTES = COUNT * 65536;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/vm-pipes.ts needs root (libvirt, docker)');
  const dir = mkdtempSync('/var/tmp/zone-bench-vmpipes-');
  chmodSync(dir, 0o711); // qemu walks to the initrd and binds its sockets under the data dir
  const logger = pino({ level: 'silent' });
  const ctx: DriverContext = { node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } };
  const containers = new DockerDriver(ctx, { removeGraceMs: 0 });
  const vms = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: NODE, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
  await server.start();
  const nc = await server.connect();
  const kinds = new Map<string, Driver>();
  const runner = new PipeRunner({ nc, logger, resyncMs: 1000, locate: (end) => ({ driver: kinds.get(`${end.blueprint}/${end.workload}`)!, id: workloadId(NODE, end.owner, end.blueprint, end.workload) }) });
  const ends: LocalPipeEnd[] = [];
  const vmIds: string[] = [];

  /** Seconds from the source's start to the last byte written into the sink's stdin; checks the sink's count. */
  async function transfer(blueprint: string, sinkKind: 'container' | 'vm'): Promise<number> {
    const workloads: Workload[] = [
      { name: 'source', kind: 'container', image: 'zone/busybox', restart: 'never', command: ['dd', 'if=/dev/zero', 'bs=65536', `count=${COUNT}`] },
      { name: 'sink', kind: sinkKind, image: 'zone/busybox', restart: 'never', command: ['wc', '-c'], resources: { memory: '128Mi' } },
    ];
    const document = { name: blueprint, version: 1, owner: OWNER, node: NODE, workloads, pipes: [{ from: 'source.stdout', to: 'sink.stdin' }] };
    const specs = desiredWorkloads(NODE, [{ owner: OWNER, name: blueprint, version: 1, deleted: false, acceptedAt: new Date().toISOString(), document }]);
    const sink = specs.find((s) => s.workload === 'sink')!;
    const source = specs.find((s) => s.workload === 'source')!;
    kinds.set(`${blueprint}/source`, containers);
    kinds.set(`${blueprint}/sink`, sinkKind === 'vm' ? vms : containers);
    if (sinkKind === 'vm') vmIds.push(sink.id);
    ends.push(...localPipeEnds(NODE, document));
    await runner.setEnds(ends);
    const sinkDriver = kinds.get(`${blueprint}/sink`)!;
    // The sink's stdout is the bench's: its count.
    const held = { ...sink.definition, stdout: 'pipe' as const };
    await sinkDriver.ensure({ ...sink, definition: held, specHash: specHash(held) });
    const count = text((await sinkDriver.attach(sink.id, { stdin: false, replay: true })).stdout);
    const pipe = pipeIdentity(OWNER, `${NODE}/${blueprint}/source.stdout`, `${NODE}/${blueprint}/sink.stdin`);
    const consumed = async () => (await runner.stats()).find((s) => s.pipe === pipe.id && s.role === 'consume');
    // Running, and its stdin attached by the feeder (a VM: booted with its port held).
    await waitFor(async () => (await consumed())?.state === 'working', { what: `the ${sinkKind} sink fed`, timeoutMs: 180_000, intervalMs: 20 });
    if (sinkKind === 'vm') {
      // Booted: the guest init started wc on its port.
      await waitFor(async () => (await text(await vms.logs(sink.id, { follow: false }))).includes('zone: started sink'), { what: 'the VM sink booted', timeoutMs: 180_000, intervalMs: 50 });
    }
    const began = process.hrtime.bigint();
    await containers.ensure(source);
    await waitFor(async () => (await consumed())?.bytesConsumed === BYTES, { what: `${BYTES} bytes into the ${sinkKind} sink`, timeoutMs: 600_000, intervalMs: 20 });
    const seconds = Number(process.hrtime.bigint() - began) / 1e9;
    const counted = (await count).trim();
    if (counted !== String(BYTES)) throw new Error(`the ${sinkKind} sink counted ${counted} bytes, expected ${BYTES}`);
    return seconds;
  }

  /** Seconds to write BYTES into a VM's stdin port straight from here; checks the VM's count. */
  async function portAlone(): Promise<number> {
    const definition = { ...normalizeWorkload({ name: 'port', kind: 'vm', image: 'zone/busybox', command: ['wc', '-c'], resources: { memory: '128Mi' } }), stdin: 'pipe' as const, stdout: 'pipe' as const };
    const id = workloadId(NODE, OWNER, 'port', 'port');
    vmIds.push(id);
    await vms.ensure({ node: NODE, owner: OWNER, blueprint: 'port', workload: 'port', id, definition, specHash: specHash(definition) });
    const io = await vms.attach(id, { replay: true });
    const count = text(io.stdout);
    await waitFor(async () => (await text(await vms.logs(id, { follow: false }))).includes('zone: started port'), { what: 'the VM booted', timeoutMs: 180_000, intervalMs: 50 });
    const zeros = Buffer.alloc(65536);
    const began = process.hrtime.bigint();
    for (let i = 0; i < COUNT; i++) if (!io.stdin.write(zeros)) await once(io.stdin, 'drain');
    await new Promise<void>((resolve) => io.stdin.end(resolve));
    const seconds = Number(process.hrtime.bigint() - began) / 1e9;
    const counted = (await count).trim();
    if (counted !== String(BYTES)) throw new Error(`the VM counted ${counted} bytes on its port, expected ${BYTES}`);
    return seconds;
  }

  try {
    const toContainer = await transfer('tocontainer', 'container');
    const toVm = await transfer('tovm', 'vm');
    const port = await portAlone();
    const accelerator = (await vms.fingerprint()).details.accelerator;
    const rate = (s: number) => BYTES / s / 2 ** 20;
    console.log(`VM pipes benchmark: ${BYTES / 2 ** 20} MiB of zeros from dd in a container through a pipe into wc -c; VM accelerator: ${accelerator}`);
    console.log(`(a) container -> container  ${rate(toContainer).toFixed(1).padStart(7)} MiB/s (${toContainer.toFixed(2)} s)`);
    console.log(`(b) container -> VM         ${rate(toVm).toFixed(1).padStart(7)} MiB/s (${toVm.toFixed(2)} s)`);
    console.log(`(c) the VM's stdin port alone ${rate(port).toFixed(1).padStart(7)} MiB/s (${port.toFixed(2)} s)`);
    console.log(`ratio VM / container (b/a): throughput ${(rate(toVm) / rate(toContainer)).toFixed(3)}x; pipe into a VM / its port alone (b/c): ${(rate(toVm) / rate(port)).toFixed(3)}x`);
  } finally {
    await runner.stop();
    for (const id of vmIds) await vms.remove(id).catch(() => undefined);
    await vms.close();
    await containers.close();
    await removeNodeContainers([NODE]);
    await nc.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
