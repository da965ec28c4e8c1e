// NatsProcTable against a real nats-server (one node) started through the supervisor.
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import type { ProcEntry } from '../../../../appliance/pseudokernel/interfaces.ts';
import { NatsProcTable } from '../../../../appliance/pseudokernel/proc/table.ts';
import { natsForFile } from '../../../helpers/nats.ts';

const owner = (n: number) => `ed25519:${Buffer.alloc(32, n).toString('base64')}`;
const logs: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
let nc: NatsConnection;

t.before(async () => {
  nc = await natsForFile('proc', logger);
});

const row = (node: string, blueprint: string, workload: string, fields: Partial<ProcEntry> = {}): ProcEntry => ({
  node, blueprint, workload, kind: 'container', state: 'running', restarts: 0, since: '2026-01-01T00:00:00.000Z', ...fields,
});

t.test('rows published by each node are listed together, updated in place and removed', async (t) => {
  const table = await NatsProcTable.open(nc, { owner: owner(1), replicas: 1, logger });
  t.same(await table.list(), [], 'empty at first');
  await table.publish(row('node-b', 'web', 'api'));
  await table.publish(row('node-a', 'web', 'api'));
  await table.publish(row('node-a', 'video.pipeline', 'camera 1', { kind: 'vm', state: 'backoff', restarts: 2 }));
  t.same((await table.list()).map((r) => `${r.node}/${r.blueprint}/${r.workload}`), ['node-a/video.pipeline/camera 1', 'node-a/web/api', 'node-b/web/api']);
  await table.publish(row('node-a', 'web', 'api', { state: 'exited', restarts: 1 }));
  t.match((await table.list()).find((r) => r.node === 'node-a' && r.workload === 'api'), { state: 'exited', restarts: 1 });
  t.equal((await table.list()).length, 3, 'an update replaces the row');
  await table.remove('node-a', 'web', 'api');
  t.same((await table.list()).map((r) => r.node + r.workload), ['node-acamera 1', 'node-bapi']);
});

t.test('owners have separate tables', async (t) => {
  const mine = await NatsProcTable.open(nc, { owner: owner(2), replicas: 1, logger });
  const theirs = await NatsProcTable.open(nc, { owner: owner(3), replicas: 1, logger });
  t.not(mine.bucket, theirs.bucket);
  await mine.publish(row('n', 'bp', 'w'));
  t.equal((await mine.list()).length, 1);
  t.same(await theirs.list(), []);
});

t.test('a row that is not a process entry is skipped and logged', async (t) => {
  const table = await NatsProcTable.open(nc, { owner: owner(4), replicas: 1, logger });
  await table.publish(row('n', 'bp', 'good'));
  await (await new Kvm(nc).open(table.bucket)).put('bm9kZQ.YnA.YmFk', '{"node":"n"}');
  t.same((await table.list()).map((r) => r.workload), ['good']);
  t.ok(logs.some((line) => line.key === 'bm9kZQ.YnA.YmFk' && /skipped/.test(String(line.msg))));
});

t.test('a row carries the workload\'s volumes; one with a malformed volume is skipped', async (t) => {
  const table = await NatsProcTable.open(nc, { owner: owner(6), replicas: 1, logger });
  const volumes = [{ name: 'data', kind: 'filesystem', sizeBytes: 16777216, usedBytes: 4096, target: '/data', readOnly: false }];
  await table.publish(row('n', 'bp', 'db', { volumes }));
  await table.publish(row('n', 'bp', 'web', { volumes: [] }));
  t.same(await table.list(), [row('n', 'bp', 'db', { volumes }), row('n', 'bp', 'web')], 'as published; an empty list is no field');
  await (await new Kvm(nc).open(table.bucket)).put('bg.YnA.YmFk', JSON.stringify({ ...row('n', 'bp', 'bad'), volumes: [{ name: 'x', sizeBytes: -1 }] }));
  t.same((await table.list()).map((r) => r.workload), ['db', 'web']);
});

t.test('replicas out of range are refused naming the option', async (t) => {
  await t.rejects(NatsProcTable.open(nc, { owner: owner(5), replicas: 0, logger }), /replicas is 0; expected an integer from 1/);
});
