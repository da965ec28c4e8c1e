// A FIFO of /zone/fs across nodes: two nats-servers clustered on loopback, each node with
// its own /zone mount (the real FUSE mount, the real kernel FIFOs) and FIFO relay, and
// containers of the real dockerd that open the FIFO through their /zone.
import { createHash } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import Docker from 'dockerode';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { announcementOf, fifoIdentity } from '../../../../appliance/pseudokernel/fifos/protocol.ts';
import { FifoRelay } from '../../../../appliance/pseudokernel/fifos/relay.ts';
import { FIFO_WAITERS_PATH } from '../../../../appliance/pseudokernel/fifos/waiters.ts';
import { NatsGridFs } from '../../../../appliance/pseudokernel/fs/grid-fs.ts';
import { mountZone, type ZoneMount } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { NatsServer } from '../../../../appliance/pseudokernel/nats/nats-server.ts';
import { startLoopbackCluster } from '../../../helpers/nats-grid.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { MemoryProcTable } from '../memory-grid.ts';

const run = promisify(execFile);
const docker = new Docker();
const NODES = ['n1', 'n3'] as const;
const OWNER = `ed25519:${Buffer.alloc(32, 24).toString('base64')}`;
const OTHER_OWNER = `ed25519:${Buffer.alloc(32, 23).toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'zone-fifos-'));
const logger = createLogger({ level: process.env.FIFO_DEBUG ? 'debug' : 'error' });
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];
const mounts: ZoneMount[] = [];
const relays: FifoRelay[] = [];
const containers: string[] = [];
const hostProcesses: ChildProcess[] = [];

t.before(async () => {
  await startLoopbackCluster(dir, NODES, 'zone-fifos', logger, { servers, connections });
  for (const [i, node] of NODES.entries()) {
    const nc = connections[i]!;
    const fs = await NatsGridFs.open(nc, { owner: OWNER, replicas: NODES.length, logger });
    const self = { name: 'w', blueprint: 'b', node, owner: OWNER, ip: null };
    const mount = await mountZone({ mountpoint: join(dir, `zone-${node}`), grid: fs, proc: new MemoryProcTable([]), self, logger, scratchParent: dir, onFifo: () => relays[i]?.fifoLookedUp() });
    mounts.push(mount);
    const relay = new FifoRelay({ nc, node, logger, waitersCommand: FIFO_WAITERS_PATH });
    await relay.start();
    await relay.addMount(mount.mountpoint, OWNER);
    relays.push(relay);
  }
  // A second workload's mount on node 1: another FUSE mount, so another kernel FIFO.
  const second = await mountZone({ mountpoint: join(dir, 'zone-n1-second'), grid: await NatsGridFs.open(connections[0]!, { owner: OWNER, replicas: NODES.length, logger }), proc: new MemoryProcTable([]), self: { name: 'w2', blueprint: 'b', node: 'n1', owner: OWNER, ip: null }, logger, scratchParent: dir, onFifo: () => relays[0]?.fifoLookedUp() });
  mounts.push(second);
  await relays[0]!.addMount(second.mountpoint, OWNER);
});

t.teardown(async () => {
  for (const child of hostProcesses) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(containers.map((name) => docker.getContainer(name).remove({ force: true }).catch(() => undefined)));
  await Promise.all(relays.map((relay) => relay.stop()));
  await Promise.all(mounts.map((mount) => mount.unmount()));
  await Promise.all(connections.map((nc) => nc.close()));
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  /** The container's main process, as the host sees it. */
  pid: number;
  exited: Promise<{ code: number; output: string }>;
}

/** Starts `script` (busybox sh) in a container with node `i`'s /zone. */
async function startContainer(i: number, script: string): Promise<Started> {
  const name = `zone-fifo-test-${process.pid}-${containers.length}`;
  containers.push(name);
  const container = await docker.createContainer({
    name, Image: 'zone/busybox:latest', Cmd: ['sh', '-c', script], Labels: { 'zone-test': name },
    HostConfig: { Binds: [`${mounts[i]!.mountpoint}:/zone`], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  await container.start();
  const pid = (await container.inspect()).State.Pid;
  const exited = (async () => {
    const state = await waitFor(async () => {
      const { State } = await container.inspect();
      return State.Status === 'exited' ? State : null;
    }, { timeoutMs: 60_000, intervalMs: 100, what: `container ${name} (${script}) to exit` });
    const output = (await container.logs({ stdout: true, stderr: true, follow: false })).toString('latin1');
    return { code: state.ExitCode, output: demultiplexed(output) };
  })();
  return { pid, exited };
}

/** Runs `script` in a container with node `i`'s /zone; its exit code and output. */
async function inContainer(i: number, script: string): Promise<{ code: number; output: string }> {
  return (await startContainer(i, script)).exited;
}

function demultiplexed(raw: string): string {
  let out = '';
  for (let at = 0; at + 8 <= raw.length;) {
    const size = raw.charCodeAt(at + 4) << 24 | raw.charCodeAt(at + 5) << 16 | raw.charCodeAt(at + 6) << 8 | raw.charCodeAt(at + 7);
    out += raw.slice(at + 8, at + 8 + size);
    at += 8 + size;
  }
  return out;
}

t.test('seq written on node 1 reaches sort on node 3 whole and in order, and EOF ends it', async (t) => {
  await run('mkfifo', [join(mounts[0]!.mountpoint, 'fs', 'p')]);
  t.ok((await stat(join(mounts[1]!.mountpoint, 'fs', 'p'))).isFIFO(), 'node 3 sees the FIFO made on node 1');
  const expected = createHash('md5').update(Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join('')).digest('hex');
  // The shell of `exec` opens the FIFO itself: its own process is the one that waits.
  const writer = await startContainer(0, 'exec seq 1 100000 > /zone/fs/p');
  await waitFor(async () => (await readFile(`/proc/${writer.pid}/wchan`, 'utf8')) === 'wait_for_partner', { timeoutMs: 10_000, what: 'the writer waiting in open() for a reader' });
  t.pass('with no reader anywhere, the writer\'s open waits');
  const reader = inContainer(1, 'tee /tmp/got < /zone/fs/p | sort -n | tail -1; md5sum < /tmp/got');
  const [r, w] = await Promise.all([reader, writer.exited]);
  t.equal(w.code, 0, 'the writer\'s open returned and its writes succeeded');
  t.equal(r.code, 0);
  t.equal(r.output, `100000\n${expected}  -\n`, 'sort -n | tail -1 gives 100000; the bytes are exactly seq\'s');
});

t.test('a reader on node 3 that goes away gives the writer on node 1 EPIPE, or SIGPIPE where it does not ignore it', async (t) => {
  const [r, w] = await Promise.all([
    inContainer(1, 'head -c 1000 /zone/fs/p | wc -c'),
    inContainer(0, 'trap "" PIPE; dd if=/dev/zero of=/zone/fs/p bs=4096 count=1000000; echo "status $?"'),
  ]);
  t.equal(r.output.trim(), '1000', 'the reader read its 1000 bytes and left');
  t.match(w.output, /error writing '\/zone\/fs\/p': Broken pipe/, 'the writer\'s write failed with EPIPE');
  t.match(w.output, /status 1\n/);
  const [, killed] = await Promise.all([
    inContainer(1, 'head -c 1000 /zone/fs/p > /dev/null'),
    inContainer(0, 'seq 1 100000000 > /zone/fs/p; echo "status $?"'),
  ]);
  t.equal(killed.output, 'status 141\n', 'a writer that does not ignore SIGPIPE is killed by it (128 + 13)');
});

t.test('two workloads of one node (two mounts, so two kernel FIFOs) are joined the same way', async (t) => {
  const expected = createHash('md5').update(Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('')).digest('hex');
  const [read, w] = await Promise.all([
    run('sh', ['-c', 'md5sum < "$1"', 'reader', join(mounts[2]!.mountpoint, 'fs', 'p')], { timeout: 60_000 }),
    inContainer(0, 'seq 1 1000 > /zone/fs/p'),
  ]);
  t.equal(w.code, 0);
  t.equal(read.stdout, `${expected}  -\n`);
});

/** `script` run by the host's sh with `$1` = `path`: its pid (the process that opens, with `exec`) and its end. */
function onHost(script: string, path: string): { pid: number; exited: Promise<{ code: number | null; stdout: string }> } {
  const child = spawn('sh', ['-c', script, 'sh', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  hostProcesses.push(child);
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
  return { pid: child.pid!, exited: once(child, 'close').then(([code]) => ({ code: code as number | null, stdout })) };
}

const wchan = (pid: number) => readFile(`/proc/${pid}/wchan`, 'utf8').catch(() => '');

t.test('two owners\' FIFOs at one path are never joined: owner B\'s reader gets owner B\'s writer\'s bytes, never owner A\'s', async (t) => {
  // Owner B's workloads on both nodes: mounts of their own, served by the same relays.
  const other: ZoneMount[] = [];
  for (const [i, node] of NODES.entries()) {
    const grid = await NatsGridFs.open(connections[i]!, { owner: OTHER_OWNER, replicas: NODES.length, logger });
    const mount = await mountZone({ mountpoint: join(dir, `zone-${node}-other`), grid, proc: new MemoryProcTable([]), self: { name: 'w', blueprint: 'b', node, owner: OTHER_OWNER, ip: null }, logger, scratchParent: dir, onFifo: () => relays[i]!.fifoLookedUp() });
    mounts.push(mount);
    other.push(mount);
    await relays[i]!.addMount(mount.mountpoint, OTHER_OWNER);
  }
  const x = (mount: ZoneMount) => join(mount.mountpoint, 'fs', 'x');
  await run('mkfifo', [x(mounts[0]!)]);
  await run('mkfifo', [x(other[0]!)]);
  const aWriter = onHost('exec printf from-A > "$1"', x(mounts[0]!));
  const bReader = onHost('exec cat "$1"', x(other[1]!));
  await waitFor(async () => (await wchan(aWriter.pid)) === 'wait_for_partner' && (await wchan(bReader.pid)) === 'wait_for_partner', { timeoutMs: 10_000, what: 'A\'s writer on node 1 and B\'s reader on node 3 waiting in open()' });

  // Places with openers waiting say so every 500 ms, and stop while they are joined: once
  // both have said so twice since, a relay that mixed the owners would have joined them.
  const heard = { aWrites: 0, bReads: 0 };
  const listening = [
    connections[0]!.subscribe(fifoIdentity(OWNER, '/x').subject, { callback: (_, m) => { if (announcementOf(m.string())?.direction === 'write') heard.aWrites++; } }),
    connections[0]!.subscribe(fifoIdentity(OTHER_OWNER, '/x').subject, { callback: (_, m) => { if (announcementOf(m.string())?.direction === 'read') heard.bReads++; } }),
  ];
  try {
    await waitFor(() => heard.aWrites >= 2 && heard.bReads >= 2, { timeoutMs: 20_000, what: 'both places announcing their waiting openers twice' });
  } finally {
    for (const s of listening) s.unsubscribe();
  }
  t.equal(await wchan(aWriter.pid), 'wait_for_partner', 'A\'s writer still waits: B\'s reader is no partner of it');
  t.equal(await wchan(bReader.pid), 'wait_for_partner', 'B\'s reader still waits');

  // B's writer on node 1, beside A's waiting writer at the same path.
  const bWriter = onHost('exec printf from-B > "$1"', x(other[0]!));
  const [read, wrote] = await Promise.all([bReader.exited, bWriter.exited]);
  t.same(read, { code: 0, stdout: 'from-B' }, 'B\'s reader got B\'s writer\'s bytes, then EOF');
  t.equal(wrote.code, 0);
  t.equal(await wchan(aWriter.pid), 'wait_for_partner', 'A\'s writer waits on');

  const aReader = onHost('exec cat "$1"', x(mounts[1]!));
  const [aRead, aWrote] = await Promise.all([aReader.exited, aWriter.exited]);
  t.same(aRead, { code: 0, stdout: 'from-A' }, 'A\'s reader on node 3 gets A\'s bytes');
  t.equal(aWrote.code, 0);
});
