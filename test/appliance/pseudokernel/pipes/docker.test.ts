// Pipes end to end on one node: the real Docker driver, a real nats-server, the
// PipeRunner between them. `seq | shuf` in one container piped into `sort` in another
// gives what `seq | sort` gives here, also when `sort` is killed in the middle.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { setTimeout as delay } from 'node:timers/promises';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import Docker from 'dockerode';
import { specHash } from '../../../../blueprints/normalize.ts';
import type { ContainerWorkload, Pipe } from '../../../../blueprints/schema.ts';
import type { DriverContext, WorkloadSpec } from '../../../../drivers/contract.ts';
import { DockerDriver } from '../../../../drivers/docker/driver.ts';
import { FakeDriver } from '../../../../drivers/fake/driver.ts';
import { removeNodeContainers } from '../../../../cli/cluster/grid.ts';
import { desiredWorkloads } from '../../../../appliance/engine/desired.ts';
import { workloadId } from '../../../../drivers/names.ts';
import { createLogger } from '../../../../appliance/logger.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { localPipeEnds, pipeIdentity, type LocalPipeEnd, type PipeIdentity } from '../../../../blueprints/pipes.ts';
import { pipeMessageOf } from '../../../../appliance/pseudokernel/pipes/ends.ts';
import { relayIncarnation } from '../../../../appliance/pseudokernel/pipes/producer.ts';
import { PipeRunner, type PipeStats } from '../../../../appliance/pseudokernel/pipes/runner.ts';
import { ensurePipeStream } from '../../../../appliance/pseudokernel/pipes/stream.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const NODE = `pd${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 6).toString('base64')}`;
const LINES = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'zone-pipes-'));
const logs: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
const docker = new Docker();
const ctx: DriverContext = { node: NODE, dataDir: dir, openSecret: () => { throw new Error('no secrets here'); } };
const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
const [port] = (await freeLoopbackPorts(1)) as [number];
const server = new NatsServer({ dataDir: join(dir, 'nats'), serverName: NODE, host: '127.0.0.1', port, logger, startTimeoutMs: 10_000 });
await server.start();
const nc = await server.connect();
const runner = new PipeRunner({ nc, logger, resyncMs: 1000, locate: (end) => ({ driver, id: workloadId(NODE, end.owner, end.blueprint, end.workload) }) });
const ends: LocalPipeEnd[] = [];

t.teardown(async () => {
  await runner.stop();
  await driver.close();
  await removeNodeContainers([NODE]);
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `seq 1 n | sort`, here: what the pipeline in the containers must print. */
const sortedSeq = execFileSync('sh', ['-c', `seq 1 ${LINES} | LC_ALL=C sort`], { maxBuffer: 64 * 2 ** 20 });
const seqBytes = (from: number, to: number) => Buffer.byteLength(Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join(''));

/**
 * The specs of a blueprint as the engine makes them (pipes included), and its local pipe
 * ends, which the runner takes on. `holdStdout`: the test reads that workload's stdout
 * from its first byte (as a pipe's producer would), since its log keeps only the last 30 MB.
 */
async function applyPipes(blueprint: string, workloads: ContainerWorkload[], pipes: Pipe[], holdStdout: string): Promise<Map<string, WorkloadSpec>> {
  const document = { name: blueprint, version: 1, owner: OWNER, node: NODE, workloads, pipes };
  const specs = desiredWorkloads(NODE, [{ owner: OWNER, name: blueprint, version: 1, deleted: false, acceptedAt: new Date().toISOString(), document }]);
  const held = specs.map((s) => {
    if (s.workload !== holdStdout) return s;
    const definition = { ...s.definition, stdout: 'pipe' as const };
    return { ...s, definition, specHash: specHash(definition) };
  });
  ends.push(...localPipeEnds(NODE, document));
  await runner.setEnds(ends);
  return new Map(held.map((s) => [s.workload, s]));
}

async function statsOf(pipe: PipeIdentity, role: LocalPipeEnd['role']): Promise<PipeStats> {
  const stats = (await runner.stats()).find((s) => s.pipe === pipe.id && s.role === role);
  if (!stats) throw new Error(`no stats for the ${role} end of ${pipe.from} -> ${pipe.to}`);
  return stats;
}

/** The stdout of the incarnation `ensure` starts, from its first byte to its exit. */
async function startReadingStdout(t: Test, spec: WorkloadSpec): Promise<{ startedAt: string | null; output: Promise<Buffer> }> {
  const started = await driver.ensure(spec);
  const io = await driver.attach(spec.id, { stdin: false, replay: true });
  t.equal(io.exact, true, `${spec.workload}'s stdout is held from its start`);
  t.equal(io.startedAt, started.startedAt);
  return { startedAt: started.startedAt, output: buffer(io.stdout) };
}

const container = (w: string, command: string[]): ContainerWorkload => ({ name: w, kind: 'container', image: 'zone/busybox', command, restart: 'never', resources: { memory: '256Mi' } });

t.test('seq | shuf in one container, piped into sort in another: the output of seq | sort, byte for byte', async (t) => {
  const specs = await applyPipes('sorting', [
    container('shuffle', ['sh', '-c', `seq 1 ${LINES} | shuf`]),
    container('sorter', ['sort']),
  ], [{ from: 'shuffle.stdout', to: 'sorter.stdin' }], 'sorter');
  const pipe = pipeIdentity(OWNER, `${NODE}/sorting/shuffle.stdout`, `${NODE}/sorting/sorter.stdin`);
  const sorter = await startReadingStdout(t, specs.get('sorter')!);
  await driver.ensure(specs.get('shuffle')!);

  const output = await sorter.output;
  t.equal(output.length, sortedSeq.length, 'as many bytes');
  t.ok(output.equals(sortedSeq), 'the same bytes');
  t.match(await driver.inspect(specs.get('sorter')!.id), { state: 'exited', exitCode: 0 });
  const consumed = await waitFor(async () => {
    const s = await statsOf(pipe, 'consume');
    // Once committed the end looks again at once (the workload may run its next incarnation): working until that look ends.
    return s.lagMessages === 0 && s.state === 'waiting' && s;
  }, { timeoutMs: 20_000, what: 'the input committed and the end waiting' });
  t.match(consumed, { bytesConsumed: sortedSeq.length, lagBytes: 0, state: 'waiting', error: null });
  t.match(await statsOf(pipe, 'produce'), { bytesProduced: sortedSeq.length, error: null });
  const again = await relayIncarnation({
    js: jetstream(nc), jsm: await jetstreamManager(nc), pipe, workload: { driver, id: specs.get('shuffle')!.id },
    signal: new AbortController().signal, logger, onPublished: () => t.fail('nothing is published twice'),
  });
  t.equal(again, 'nothing', 'once committed and purged, the kept marker still tells the producer that incarnation is done');
  t.same(logs.filter((l) => Number(l.level) >= 40), [], 'no warnings');
});

t.test('sort killed in the middle of its input and started again: the next one gets the whole input, the output is still exact', async (t) => {
  // The shuffler stops halfway until the test says go, so the kill lands in the middle.
  const specs = await applyPipes('resort', [
    container('shuffle', ['sh', '-c', `seq 1 ${LINES / 2} | shuf; read go; seq ${LINES / 2 + 1} ${LINES} | shuf`]),
    container('sorter', ['sort']),
  ], [{ from: 'shuffle.stdout', to: 'sorter.stdin' }], 'sorter');
  const pipe = pipeIdentity(OWNER, `${NODE}/resort/shuffle.stdout`, `${NODE}/resort/sorter.stdin`);
  const sorter = specs.get('sorter')!;
  const half = seqBytes(1, LINES / 2);

  const first = await startReadingStdout(t, sorter);
  await driver.ensure(specs.get('shuffle')!);
  await waitFor(async () => (await statsOf(pipe, 'consume')).bytesConsumed === half, { timeoutMs: 30_000, what: 'the first half given to sort' });
  await docker.getContainer(sorter.id).kill();
  t.equal((await first.output).length, 0, 'the killed sort printed nothing');
  t.match(await driver.inspect(sorter.id), { state: 'exited', exitCode: 137 });
  t.ok((await statsOf(pipe, 'consume')).lagMessages > 0, 'its input is not committed');

  const second = await startReadingStdout(t, sorter);
  t.not(second.startedAt, first.startedAt);
  await waitFor(async () => (await statsOf(pipe, 'consume')).bytesConsumed === 2 * half, { timeoutMs: 30_000, what: 'the first half given again to the new sort' });
  const shuffleStdin = await driver.attach(specs.get('shuffle')!.id, { stdin: true, stdout: false });
  shuffleStdin.stdin.end('go\n');

  const output = await second.output;
  t.ok(output.equals(sortedSeq), 'the output of seq | sort, byte for byte');
  await waitFor(async () => (await statsOf(pipe, 'consume')).lagMessages === 0, { timeoutMs: 20_000, what: 'the input committed' });
  t.equal((await statsOf(pipe, 'consume')).bytesConsumed, half + sortedSeq.length, 'half to the killed one, all to the next');
});

t.test('a producer writing 1-byte lines as fast as it can, and one writing 1 MiB blocks: both arrive byte for byte', async (t) => {
  // Both at once, each with its own pipe: one shell write per 2-byte line (the smallest
  // messages the window can make), and dd writing a file of seq's lines 1 MiB at a time.
  const lines = 30_000;
  const blocksFrom = 2_000_000;
  const specs = await applyPipes('extremes', [
    container('ticker', ['sh', '-c', `i=0; while [ $i -lt ${lines} ]; do echo $((i % 10)); i=$((i + 1)); done`]),
    container('blocks', ['sh', '-c', `seq 1 ${blocksFrom} > /tmp/lines && dd if=/tmp/lines bs=1048576 2>/dev/null`]),
    container('ticks', ['cat']),
    container('chunks', ['cat']),
  ], [{ from: 'ticker.stdout', to: 'ticks.stdin' }, { from: 'blocks.stdout', to: 'chunks.stdin' }], 'ticks');
  // applyPipes holds one stdout: the second reader's is held the same way.
  const chunksSpec = { ...specs.get('chunks')!, definition: { ...specs.get('chunks')!.definition, stdout: 'pipe' as const } };
  const ticks = await startReadingStdout(t, specs.get('ticks')!);
  const chunks = await startReadingStdout(t, { ...chunksSpec, specHash: specHash(chunksSpec.definition) });
  await Promise.all([driver.ensure(specs.get('ticker')!), driver.ensure(specs.get('blocks')!)]);

  const expectedTicks = Buffer.from(Array.from({ length: lines }, (_, i) => `${i % 10}\n`).join(''));
  const expectedBlocks = execFileSync('seq', ['1', String(blocksFrom)], { maxBuffer: 64 * 2 ** 20 });
  const [gotTicks, gotBlocks] = await Promise.all([ticks.output, chunks.output]);
  t.equal(gotTicks.length, expectedTicks.length, '1-byte lines: as many bytes');
  t.ok(gotTicks.equals(expectedTicks), '1-byte lines: the same bytes');
  t.equal(gotBlocks.length, expectedBlocks.length, '1 MiB blocks: as many bytes');
  t.ok(gotBlocks.equals(expectedBlocks), '1 MiB blocks: the same bytes');
  t.same(logs.filter((l) => Number(l.level) >= 40), [], 'no warnings');
});

/** Lines of the long inputs below, 23 MB, and the stream they go through: 16 MiB, trimmed at 12 MiB taken. */
const LONG_LINES = 3_000_000;
const LONG_STREAM_BYTES = 16 * 2 ** 20;
const TRIMMED = 'pipe input outgrew its stream: what was fed is purged, and a next incarnation takes it up from here';

/** Blueprint `name`: `seq 1 LONG_LINES` piped into `counter` (held stdout) through a stream of LONG_STREAM_BYTES. */
async function longInput(name: string, counter: string[]): Promise<{ pipe: PipeIdentity; specs: Map<string, WorkloadSpec> }> {
  const pipe = pipeIdentity(OWNER, `${NODE}/${name}/talker.stdout`, `${NODE}/${name}/counter.stdin`);
  await ensurePipeStream(await jetstreamManager(nc), pipe, LONG_STREAM_BYTES);
  const specs = await applyPipes(name, [container('talker', ['seq', '1', String(LONG_LINES)]), container('counter', counter)], [{ from: 'talker.stdout', to: 'counter.stdin' }], 'counter');
  return { pipe, specs };
}

/** What `wc -c` printed, once it saw its EOF; fails when it has not in 120 s (the input stalled). */
async function counted(output: Promise<Buffer>): Promise<number> {
  const bound = new AbortController();
  const stalled = delay(120_000, undefined, { signal: bound.signal }).then(() => { throw new Error('wc saw no EOF in 120 s: the input stalled'); });
  return Number((await Promise.race([output, stalled]).finally(() => bound.abort())).toString().trim());
}

t.test('an input longer than its stream reaches a consumer that needs its EOF: what was fed is purged as it goes', async (t) => {
  // `wc -c` prints only at EOF: a stream that kept the whole input would fill, and the
  // producer and wc would wait for each other for ever.
  const { pipe, specs } = await longInput('long', ['wc', '-c']);
  const counter = await startReadingStdout(t, specs.get('counter')!);
  await driver.ensure(specs.get('talker')!);

  const total = seqBytes(1, LONG_LINES);
  t.ok(total > LONG_STREAM_BYTES, `the input (${total} bytes) is longer than the stream holds`);
  t.equal(await counted(counter.output), total, 'wc counted every byte');
  const trims = logs.filter((l) => l.msg === TRIMMED && l.pipe === pipe.id);
  t.ok(trims.length >= 1, `trimmed as it was fed (${trims.length} times)`);
  t.ok(trims.every((l) => Number(l.offset) > 0 && Number(l.offset) < total), 'each trim at an offset within the input');
  const consumed = await waitFor(async () => {
    const s = await statsOf(pipe, 'consume');
    return s.lagMessages === 0 && s.state === 'waiting' && s;
  }, { timeoutMs: 20_000, what: 'the input committed' });
  t.match(consumed, { bytesConsumed: total, lagBytes: 0, error: null });
  t.match(await statsOf(pipe, 'produce'), { bytesProduced: total, error: null });
});

t.test('a consumer that fails after its input was trimmed: the next one takes the input up at the trim, not at its start', async (t) => {
  // The first counter reads 14 MB (past the first trim, before a second) and fails; the
  // next (a file in the container tells them apart) counts what it is given.
  const { pipe, specs } = await longInput('relong', ['sh', '-c', 'if [ -e /tmp/again ]; then wc -c; else touch /tmp/again; head -c 14000000 >/dev/null; exit 3; fi']);
  const counter = specs.get('counter')!;
  const first = await startReadingStdout(t, counter);
  await driver.ensure(specs.get('talker')!);
  t.equal((await first.output).length, 0, 'the first counter printed nothing');
  t.match(await driver.inspect(counter.id), { state: 'exited', exitCode: 3 });
  const trims = logs.filter((l) => l.msg === TRIMMED && l.pipe === pipe.id);
  t.equal(trims.length, 1, 'trimmed once while the first was fed');
  const offset = Number(trims[0]?.offset);

  const second = await startReadingStdout(t, counter);
  t.not(second.startedAt, first.startedAt);
  t.equal(await counted(second.output), seqBytes(1, LONG_LINES) - offset, 'the next counter got the input from the trim on');
  await waitFor(async () => (await statsOf(pipe, 'consume')).lagMessages === 0, { timeoutMs: 20_000, what: 'the input committed' });
});

t.test('a producer that lost its attach takes up from the container log without publishing a byte twice', async (t) => {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const pipe = pipeIdentity(OWNER, `${NODE}/adopt/talker.stdout`, `${NODE}/adopt/listener.stdin`);
  await ensurePipeStream(jsm, pipe);
  // No pipe in its spec: its stdout is not held, as after an appliance restart.
  const [spec] = desiredWorkloads(NODE, [{
    owner: OWNER, name: 'adopt', version: 1, deleted: false, acceptedAt: new Date().toISOString(),
    document: { name: 'adopt', version: 1, owner: OWNER, node: NODE, workloads: [container('talker', ['sh', '-c', 'seq 1 3000; read go; seq 3001 6000'])] },
  }]);
  await driver.ensure(spec!);
  // Quiet before the first relay attaches: bytes written while an attach replays the log
  // can come twice (best effort, see attachReplaying), and that is not what this is about.
  await waitFor(() => execFileSync('docker', ['logs', '--tail', '1', spec!.id]).toString() === '3000\n', { timeoutMs: 20_000, what: 'the talker waiting at `read go`' });
  let published = 0;
  const relay = (signal: AbortSignal) => relayIncarnation({ js, jsm, pipe, workload: { driver, id: spec!.id }, signal, logger, onPublished: (n) => (published += n) });

  const first = new AbortController();
  const interrupted = relay(first.signal);
  await waitFor(() => published === seqBytes(1, 3000), { timeoutMs: 20_000, what: 'the first 3000 lines published' });
  first.abort();
  t.equal(await interrupted, 'interrupted');

  const again = relay(new AbortController().signal);
  // Quiet while the relay attaches again: the replay and the live stream meet exactly.
  const replays = () => logs.filter((l) => String(l.msg).includes('come from the container log')).length;
  await waitFor(() => replays() === 2, { timeoutMs: 20_000, what: 'the second relay attached' });
  const talker = await driver.attach(spec!.id, { stdin: true, stdout: false });
  talker.stdin.end('go\n');
  t.equal(await again, 'relayed');
  t.equal(published, seqBytes(1, 6000), 'the replayed part was not published again');
  t.equal(await relay(new AbortController().signal), 'nothing', 'the stream holds all of it');

  const consumer = await js.consumers.get(pipe.stream, { deliver_policy: DeliverPolicy.All });
  const chunks: Buffer[] = [];
  for await (const m of await consumer.consume()) {
    const message = pipeMessageOf((name) => m.headers?.get(name) ?? '');
    t.equal(message?.offset, Buffer.concat(chunks).length, `message ${m.seq} continues the bytes before it`);
    if (message?.kind === 'eof') {
      t.equal(message.exitCode, 0);
      break;
    }
    chunks.push(Buffer.from(m.data));
  }
  t.equal(Buffer.concat(chunks).toString(), Array.from({ length: 6000 }, (_, i) => `${i + 1}\n`).join(''), 'the stream holds the incarnation once, in order');
});

t.test('an end on a workload whose driver cannot attach to stdio (a console only) is reported in the stats, not run', async (t) => {
  const vms = new PipeRunner({ nc, logger, resyncMs: 1000, locate: () => ({ driver: new FakeDriver({ kind: 'vm', capabilities: { attach: false, console: true } }), id: 'zone-video-detector-00000000' }) });
  t.teardown(() => vms.stop());
  await vms.setEnds(localPipeEnds(NODE, { name: 'video', owner: OWNER, pipes: [{ from: 'n2/cams/camera.stdout', to: 'detector.stdin' }] }));
  const [stats] = await waitFor(async () => {
    const all = await vms.stats();
    return all[0]?.state === 'error' && all;
  }, { timeoutMs: 10_000, what: 'the VM end reported' });
  t.match(stats, { role: 'consume', to: `${NODE}/video/detector.stdin`, error: /pipes join workloads whose driver attaches to stdio: detector runs on the vm driver, which does not/, bytesConsumed: 0 });
  await vms.setEnds([]);
  t.same(await vms.stats(), [], 'dropped ends are stopped');
});
