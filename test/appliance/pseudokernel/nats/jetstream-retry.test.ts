// The retry around JetStream requests about a stream made through another server: what is
// asked again and what is not (the bound, 20 tries over 9.5 s, is left untested to keep this lean).
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import t from 'tap';
import { createLogger } from '../../../../appliance/logger.ts';
import { retryingStreamNotFound } from '../../../../appliance/pseudokernel/nats/jetstream-retry.ts';
import { natsForFile } from '../../../helpers/nats.ts';

const notFound = () => new JetStreamApiError({ code: 404, err_code: JetStreamApiCodes.StreamNotFound, description: 'stream not found' });

t.test('a stream not yet known to this server is asked for again until it is', async (t) => {
  let calls = 0;
  const info = await retryingStreamNotFound(async () => {
    if (++calls < 3) throw notFound();
    return 'found';
  });
  t.equal(info, 'found');
  t.equal(calls, 3);
});

t.test('other errors are not asked again', async (t) => {
  let calls = 0;
  await t.rejects(retryingStreamNotFound(async () => {
    calls++;
    throw new JetStreamApiError({ code: 400, err_code: JetStreamApiCodes.StreamWrongLastSequence, description: 'wrong last sequence' });
  }), { code: JetStreamApiCodes.StreamWrongLastSequence });
  t.equal(calls, 1, 'asked once');
});

t.test('a publish no stream takes yet (its stream not yet known to this server) is sent again until one does, and stored once', async (t) => {
  const nc = await natsForFile('jetstream-retry', createLogger({ level: 'warn' }));
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  let calls = 0;
  const ack = await retryingStreamNotFound(async () => {
    // The stream arrives after two publishes found no responders.
    if (++calls === 3) await jsm.streams.add({ name: 'LATE', subjects: ['late.>'], storage: StorageType.Memory });
    return js.publish('late.x', 'hello');
  });
  t.equal(calls, 3, 'sent three times');
  t.match(ack, { stream: 'LATE', seq: 1 });
  t.equal((await jsm.streams.info('LATE')).state.messages, 1, 'stored once');
});
