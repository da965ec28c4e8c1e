// Three supervised nats-servers clustered on loopback (one JetStream cluster, buckets
// with 3 replicas): what one node's connection writes, another node's reads.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../appliance/logger.ts';
import { NatsGridFs } from '../../../appliance/pseudokernel/fs/grid-fs.ts';
import { NatsServer } from '../../../appliance/pseudokernel/nats/nats-server.ts';
import { placedOrderedConsumer } from '../../../appliance/pseudokernel/nats/placed-consumer.ts';
import { NatsProcTable } from '../../../appliance/pseudokernel/proc/table.ts';
import { startLoopbackCluster } from '../../helpers/nats-grid.ts';
import { waitFor } from '../../helpers/wait.ts';

const SERVERS = 3;
const REPLICAS = Math.min(SERVERS, 3);
const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'zone-cluster-'));
const logger = createLogger({ level: 'error' });
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];

t.before(() => startLoopbackCluster(dir, Array.from({ length: SERVERS }, (_, i) => `n${i}`), 'zone-test', logger, { servers, connections }));

t.teardown(async () => {
  await Promise.all(connections.map((nc) => nc.close()));
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test('a file written through one server is read byte-exact through the others', async (t) => {
  const [fs0, fs1, fs2] = await Promise.all(connections.map((nc) => NatsGridFs.open(nc, { owner: OWNER, replicas: REPLICAS, logger })));
  const info = await (await jetstreamManager(connections[0]!)).streams.info(`OBJ_${fs0!.buckets.files}`);
  t.equal(info.config.num_replicas, REPLICAS);
  t.equal((info.cluster?.replicas?.length ?? 0) + 1, REPLICAS, 'the contents are on every server');

  const data = randomBytes(16 * 2 ** 20);
  await fs0!.mkdir('/shared');
  await fs0!.write('/shared/data.bin', Readable.from([data]));
  for (const [i, fs] of [[1, fs1!], [2, fs2!]] as const) {
    t.match(await fs.stat('/shared/data.bin'), { type: 'file', size: data.length }, `stat through n${i}`);
    t.equal(sha256(await buffer(await fs.read('/shared/data.bin'))), sha256(data), `16 MiB byte-exact through n${i}`);
  }
  await fs1!.rename('/shared/data.bin', '/shared/renamed.bin');
  t.same(await fs2!.list('/shared'), ['renamed.bin'], 'a rename through n1 is seen through n2');
  await fs2!.write('/shared/renamed.bin', Readable.from([Buffer.from('small now')]));
  t.equal((await buffer(await fs0!.read('/shared/renamed.bin'))).toString(), 'small now');
});

t.test('process rows published on two nodes are listed on the third', async (t) => {
  const [table0, table1, table2] = await Promise.all(connections.map((nc) => NatsProcTable.open(nc, { owner: OWNER, replicas: REPLICAS, logger })));
  const since = new Date().toISOString();
  await table0!.publish({ node: 'n0', blueprint: 'video', workload: 'camera', kind: 'container', state: 'running', restarts: 0, since });
  await table1!.publish({ node: 'n1', blueprint: 'video', workload: 'detector', kind: 'vm', state: 'backoff', restarts: 3, since });
  t.same((await table2!.list()).map((row) => `${row.node}/${row.workload}/${row.state}`), ['n0/camera/running', 'n1/detector/backoff']);
  await table1!.remove('n1', 'video', 'detector');
  t.same((await table2!.list()).map((row) => row.workload), ['camera']);
});

t.test('a consumer of a replicated stream is placed on the stream\'s leader, wherever its connection is', async (t) => {
  const fs0 = await NatsGridFs.open(connections[0]!, { owner: OWNER, replicas: REPLICAS, logger });
  const stream = `OBJ_${fs0.buckets.files}`;
  const leader = (await (await jetstreamManager(connections[0]!)).streams.info(stream)).cluster?.leader;
  t.ok(leader, 'the stream has a leader');
  // The server places each at random among the stream's three: 12 on the leader by chance is one in half a million.
  const placed = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
    const consumer = await placedOrderedConsumer(jetstream(connections[i % SERVERS]!), stream, { filter_subjects: '$O.>' });
    const server = (await consumer.info(true)).cluster?.leader;
    await consumer.delete();
    return server;
  }));
  t.same(new Set(placed), new Set([leader]));
});

t.test('with one server killed, the others still write; restarted, it serves what was written meanwhile', async (t) => {
  const fs0 = await NatsGridFs.open(connections[0]!, { owner: OWNER, replicas: REPLICAS, logger });
  const victim = servers[2]!;
  const pid = victim.pid!;
  process.kill(pid, 'SIGKILL');
  // Two of three servers are a quorum; a stream whose leader was on n2 answers once it has elected another.
  const data = randomBytes(2 ** 20);
  await waitFor(() => fs0.write('/while-down.bin', Readable.from([data])).then(() => true), { timeoutMs: 30_000, what: 'a write with n2 down' });
  await waitFor(() => victim.pid !== pid && victim.pid, { timeoutMs: 10_000, what: 'n2 restarted by its supervisor' });
  const fs2 = await NatsGridFs.open(connections[2]!, { owner: OWNER, replicas: REPLICAS, logger });
  const read = await waitFor(async () => buffer(await fs2.read('/while-down.bin')), { timeoutMs: 20_000, what: '/while-down.bin through n2\'s connection' });
  t.equal(sha256(read), sha256(data));
});
