// putObject writes in the object store's own layout: the official client reads back
// (and checks the digest of) what it wrote; a source that fails leaves no chunk behind.
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { putObject } from '../../../../appliance/pseudokernel/nats/object-chunks.ts';
import { natsForFile } from '../../../helpers/nats.ts';

const BUCKET = 'chunks-test';
let nc: NatsConnection;
let store: ObjectStore;

t.before(async () => {
  nc = await natsForFile('object-chunks', createLogger({ level: 'warn' }));
  store = await new Objm(jetstream(nc)).create(BUCKET, { storage: StorageType.File });
});

const put = async (name: string, pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) =>
  putObject({ js: jetstream(nc), jsm: await jetstreamManager(nc), bucket: BUCKET, name }, (async function* () { yield* pieces; })());

async function readBack(name: string): Promise<Buffer> {
  const result = await store.get(name);
  if (!result) throw new Error(`${name} is not in the store`);
  const parts: Uint8Array[] = [];
  for await (const part of result.data) parts.push(part);
  // The client checks the digest once the data is read: a wrong one rejects here.
  if (await result.error) throw await result.error;
  return Buffer.concat(parts);
}

t.test('what putObject writes, in pieces of any size, the object store reads back byte-exact with its digest', async (t) => {
  const data = randomBytes(3 * 128 * 1024 + 5);
  const pieces = [data.subarray(0, 1), data.subarray(1, 200_000), data.subarray(200_000)];
  t.same(await put('four-chunks', pieces), { size: data.length, chunks: 4 });
  t.match(await store.info('four-chunks'), { size: data.length, chunks: 4, deleted: false });
  t.ok((await readBack('four-chunks')).equals(data));
  t.same(await put('empty', []), { size: 0, chunks: 0 });
  t.equal((await readBack('empty')).length, 0);
});

t.test('a source that fails midway: putObject rejects, no object, no chunk left', async (t) => {
  const jsm = await jetstreamManager(nc);
  const before = (await jsm.streams.info(`OBJ_${BUCKET}`)).state.messages;
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield randomBytes(5 * 128 * 1024);
    throw new Error('the writer went away');
  }
  await t.rejects(put('broken', failing()), /the writer went away/);
  t.equal(await store.info('broken'), null);
  t.equal((await jsm.streams.info(`OBJ_${BUCKET}`)).state.messages, before, 'its chunks were purged');
});
