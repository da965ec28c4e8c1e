// /zone/fs sequential write and read through the FUSE mount (close-to-open: the write
// includes publishing the file to JetStream at close; the read reads the version open by range)
// against the host's local disk, in the same run, with dd in a child process (the
// process serving a FUSE mount must never touch it itself).
//  write: dd of N MiB, fsync'd on the local disk; on /zone until dd has closed the file
//  read:  dd of the same file to /dev/null; the local file after dropping the page cache
//  small files: a shell loop making files of 6 bytes (create, write, close each), local and /zone
//  bare JetStream (second baseline, what /zone/fs rides on): the same bytes published by a
//    bare nats client into a stream with the files' replicas, in 128 KiB messages with 32
//    in flight, and read back through a consumer on the other server; and as many 6-byte
//    messages as small files, each published once the one before is acknowledged
// /zone/fs runs on two nats-servers clustered on loopback (files kept in 2 copies: every
// write crosses the route), read through the server that does not lead the files'
// stream (the read crosses the route too); routes with mutual TLS, as nodes run
// them, and (unless `tls` is given) routes without TLS (`plainRoutes`, a switch for this
// comparison only). The rounds alternate local, TLS, plain, so the machine's other load
// hits all three alike.
// Run: node --import tsx bench/zonefs.ts [MiB, default 64] [rounds, default 3] [small files, default 1000] [tls|both, default both]
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '../appliance/logger.ts';
import { mountZone, type ZoneMount } from '../appliance/pseudokernel/mount/mount.ts';
import { NatsGridFs } from '../appliance/pseudokernel/fs/grid-fs.ts';
import { bucketsOf } from '../appliance/pseudokernel/nats/buckets.ts';
import { NatsServer } from '../appliance/pseudokernel/nats/nats-server.ts';
import { loopbackGrid } from '../test/helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../test/helpers/ports.ts';

const run = promisify(execFile);
const MIB = Number.parseInt(process.argv[2] ?? '64', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '3', 10);
const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const SMALL_FILES = Number.parseInt(process.argv[4] ?? '1000', 10);
const MODES = process.argv[5] === 'tls' ? ['tls'] as const : ['tls', 'plain'] as const;
const REPLICAS = 2;
const MESSAGE_BYTES = 128 * 1024;
const WINDOW = 32;
/** Room for the files of a round (two of them while one replaces the other) above the default quota. */
const QUOTA = { ownerBytes: Math.max(256, 3 * MIB) * 2 ** 20, ownerKvBytes: 16 * 2 ** 20 };

const dir = mkdtempSync('/var/tmp/zone-bench-zonefs-');
const logger = createLogger({ level: 'warn' });
const grid = await loopbackGrid(dir);
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];
const mounts: ZoneMount[] = [];

/** Seconds one command takes. */
async function timed(command: string): Promise<number> {
  const start = performance.now();
  await run('sh', ['-c', command]);
  return (performance.now() - start) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rate = (seconds: number) => `${(MIB / seconds).toFixed(1)} MiB/s`;
const dropCaches = () => {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
    return true;
  } catch {
    return false;
  }
};

/** Two clustered servers, a /zone mount through each; `tls` false: plain routes. */
async function clusterMounts(name: string, tls: boolean): Promise<{ mounts: ZoneMount[]; serverNames: string[]; connections: NatsConnection[] }> {
  const ports = await freeLoopbackPorts(4);
  const names = [`${name}0`, `${name}1`];
  const pair = await Promise.all(names.map(async (serverName, i) => {
    const files = await grid.routeFiles(serverName);
    const server = new NatsServer({
      dataDir: join(dir, serverName), serverName, host: '127.0.0.1', port: ports[i]!, logger, startTimeoutMs: 60_000,
      cluster: { name, host: '127.0.0.1', port: ports[2 + i]!, routes: [`127.0.0.1:${ports[3 - i]!}`], ...files, ...(tls ? {} : { tls: null }) },
    });
    servers.push(server);
    return server;
  }));
  await Promise.all(pair.map((server) => server.start()));
  const ncs = await Promise.all(pair.map((server) => server.connect()));
  connections.push(...ncs);
  const made = [];
  for (const [i, nc] of ncs.entries()) {
    const fs = await NatsGridFs.open(nc, { owner: OWNER, replicas: REPLICAS, logger, quota: QUOTA });
    const mount = await mountZone({
      mountpoint: join(dir, `mnt-${names[i]}`), grid: fs, proc: { list: async () => [] }, logger, scratchParent: dir, maxScratchBytes: QUOTA.ownerBytes,
      self: { name: 'bench', blueprint: 'bench', node: names[i]!, owner: OWNER, ip: null },
    });
    mounts.push(mount);
    made.push(mount);
  }
  return { mounts: made, serverNames: names, connections: ncs };
}

/**
 * Seconds to publish MIB MiB into a fresh stream of REPLICAS copies, to read them back
 * through the server that does not lead it, and to publish SMALL_FILES messages of 6 bytes
 * one after the other (each acknowledged before the next: one round trip, as a small file
 * costs at least one).
 */
async function bareJetStream(ncs: NatsConnection[], serverNames: string[], round: number): Promise<{ write: number; read: number; small: number }> {
  const jsm = await jetstreamManager(ncs[0]!);
  const name = `BARE${round}`;
  await jsm.streams.add({ name, subjects: [`bare.${round}`], num_replicas: REPLICAS });
  const leader = (await jsm.streams.info(name)).cluster?.leader;
  const js = jetstream(ncs[0]!);
  const payload = Buffer.alloc(MESSAGE_BYTES);
  const count = (MIB * 1024 * 1024) / MESSAGE_BYTES;
  let start = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    inFlight.push(js.publish(`bare.${round}`, payload));
    if (inFlight.length >= WINDOW) await inFlight.shift();
  }
  await Promise.all(inFlight);
  const write = (performance.now() - start) / 1000;
  const follower = ncs[serverNames.indexOf(leader ?? '') === 0 ? 1 : 0]!;
  const consumer = await jetstream(follower).consumers.get(name, { ack_policy: AckPolicy.None } as never);
  start = performance.now();
  const messages = await consumer.consume({ max_messages: 8 });
  let seen = 0;
  for await (const _message of messages) if (++seen === count) break;
  await messages.close();
  const read = (performance.now() - start) / 1000;
  start = performance.now();
  for (let i = 0; i < SMALL_FILES; i++) await js.publish(`bare.${round}`, 'hello\n');
  const small = (performance.now() - start) / 1000;
  await jsm.streams.delete(name);
  return { write, read, small };
}

/** The mount whose server does not lead the owner's files stream: its reads come over the route. */
async function followerMount(c: Awaited<ReturnType<typeof clusterMounts>>): Promise<ZoneMount> {
  const info = await (await jetstreamManager(c.connections[0]!)).streams.info(`OBJ_${bucketsOf(OWNER).files}`);
  return c.mounts[c.serverNames.indexOf(info.cluster?.leader ?? '') === 0 ? 1 : 0]!;
}

try {
  const clusters = { tls: await clusterMounts('ztls', true), plain: MODES.length > 1 ? await clusterMounts('zplain', false) : null };
  const local = { write: [] as number[], read: [] as number[], small: [] as number[] };
  const bare = { write: [] as number[], read: [] as number[], small: [] as number[] };
  const zone = { tls: { write: [] as number[], read: [] as number[], small: [] as number[] }, plain: { write: [] as number[], read: [] as number[], small: [] as number[] } };
  let cold = true;
  /** A shell loop making SMALL_FILES files in a new directory `dir`. */
  const smallFiles = (target: string) => `mkdir ${target} && cd ${target} && i=0; while [ $i -lt ${SMALL_FILES} ]; do echo hello > f$i; i=$((i+1)); done`;
  for (let i = 0; i < ROUNDS; i++) {
    const file = join(dir, `local-${i}`);
    local.write.push(await timed(`dd if=/dev/zero of=${file} bs=1M count=${MIB} conv=fsync 2>/dev/null`));
    cold = dropCaches() && cold;
    local.read.push(await timed(`dd if=${file} of=/dev/null bs=1M 2>/dev/null`));
    rmSync(file);
    if (SMALL_FILES > 0) local.small.push(await timed(`${smallFiles(join(dir, `small-${i}`))} && sync`));
    const b = await bareJetStream(clusters.tls.connections, clusters.tls.serverNames, i);
    bare.write.push(b.write);
    bare.read.push(b.read);
    bare.small.push(b.small);
    for (const mode of MODES) {
      const c = clusters[mode]!;
      zone[mode].write.push(await timed(`dd if=/dev/zero of=${join(c.mounts[0]!.mountpoint, 'fs', `big-${i}`)} bs=1M count=${MIB} 2>/dev/null`));
      const reader = await followerMount(c);
      zone[mode].read.push(await timed(`dd if=${join(reader.mountpoint, 'fs', `big-${i}`)} of=/dev/null bs=1M 2>/dev/null`));
      await run('rm', [join(c.mounts[0]!.mountpoint, 'fs', `big-${i}`)]);
      if (SMALL_FILES > 0) zone[mode].small.push(await timed(smallFiles(join(c.mounts[0]!.mountpoint, 'fs', `small-${i}`))));
    }
  }
  const m = (xs: number[]) => median(xs);
  const ratio = (baseline: number[], measured: number[]) => `${(m(baseline) / m(measured)).toFixed(3)}x`;
  console.log(`/zone/fs benchmark, ${MIB} MiB sequential, median of ${ROUNDS}; two nats-servers on loopback, ${REPLICAS} copies, read through the stream's follower; local reads ${cold ? 'after dropping the page cache' : 'from the page cache (could not drop it)'}`);
  for (const op of ['write', 'read'] as const) {
    const plain = MODES.length > 1 ? `   plain routes ${rate(m(zone.plain[op]))}   TLS/plain ${ratio(zone.plain[op], zone.tls[op])}` : '';
    console.log(`${op.padEnd(5)}  local disk ${rate(m(local[op]))}   bare JetStream ${rate(m(bare[op]))}   /zone/fs TLS routes ${rate(m(zone.tls[op]))}${plain}   zone(TLS)/local ${ratio(local[op], zone.tls[op])}   zone(TLS)/bare JetStream ${ratio(bare[op], zone.tls[op])}`);
  }
  if (SMALL_FILES > 0) {
    const files = (xs: number[]) => `${(SMALL_FILES / m(xs)).toFixed(0)} files/s`;
    const plain = MODES.length > 1 ? `   plain routes ${files(zone.plain.small)}` : '';
    console.log(`small files (${SMALL_FILES} x 6 bytes)  local disk ${files(local.small)}   bare JetStream publishes ${files(bare.small)}   /zone/fs TLS routes ${files(zone.tls.small)}${plain}   zone(TLS)/local ${ratio(local.small, zone.tls.small)}   zone(TLS)/bare ${ratio(bare.small, zone.tls.small)}`);
  }
} finally {
  for (const mount of mounts) await mount.unmount();
  await Promise.all(connections.map((nc) => nc.close()));
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
}
