// GET /v1/volumes against a stub appliance: the list as the schema says, narrowed by owner.
import t from 'tap';
import { buildServer } from '../../api/server.ts';
import type { VolumeStatus } from '../../appliance/types.ts';
import { StubAppliance } from './stub-appliance.ts';

const ALICE = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
const BOB = `ed25519:${Buffer.alloc(32, 2).toString('base64')}`;
const volume = (owner: string, over: Partial<VolumeStatus> = {}): VolumeStatus => ({
  name: 'data', owner, blueprint: 'db', kind: 'filesystem', sizeBytes: 64 * 2 ** 20, usedBytes: 15360, attachedTo: ['app'], state: 'ready', deleteAt: null, ...over,
});

t.test('the volumes of the node, and of one owner with ?owner=', async (t) => {
  const stub = new StubAppliance();
  stub.volumes = [volume(ALICE), volume(BOB, { state: 'released', attachedTo: [], deleteAt: '2026-11-30T12:00:00.000Z' })];
  const server = await buildServer(stub);
  t.teardown(() => server.close());
  const all = await server.inject({ url: '/v1/volumes' });
  t.equal(all.statusCode, 200);
  t.same(all.json(), { volumes: stub.volumes });
  const bob = await server.inject({ url: `/v1/volumes?owner=${encodeURIComponent(BOB)}` });
  t.same(bob.json<{ volumes: VolumeStatus[] }>().volumes.map((v) => [v.owner, v.state, v.deleteAt]), [[BOB, 'released', '2026-11-30T12:00:00.000Z']]);
  const bad = await server.inject({ url: '/v1/volumes?owner=nobody' });
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { error: 'INVALID' });
});
