// The retry around JetStream requests about a stream made through another server: what is
// asked again and what is not (the bound, 20 tries over 9.5 s, is left untested to keep this lean).
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import t from 'tap';
import { retryingStreamNotFound } from '../../../../appliance/pseudokernel/nats/jetstream-retry.ts';

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
