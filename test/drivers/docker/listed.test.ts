// What list() remembers of a container holds only while nothing can have changed it.
import t from 'tap';
import type { ObservedWorkload } from '../../../drivers/contract.ts';
import { ListedContainers, MAX_AGE_MS } from '../../../drivers/docker/listed.ts';

const running = { id: 'zone-a', state: 'running' } as ObservedWorkload;
const summary = { Id: 'd1', State: 'running' };

function remembered(clock: () => number = () => 0): ListedContainers {
  const listed = new ListedContainers(clock);
  listed.remember('zone-a', 'd1', running, listed.mark(), 1);
  return listed;
}

t.test('an inspect is recalled while the same events stream is live and the listing shows the same container in the same state', async (t) => {
  t.equal(remembered().recall('zone-a', summary, 1), running);
  t.equal(remembered().recall('zone-b', summary, 1), undefined, 'another container was never inspected');
});

t.test('an event of the container, a new stream, no stream, another container under the name, another state, or age make it inspected again', async (t) => {
  const touched = remembered();
  touched.touched('zone-a');
  t.equal(touched.recall('zone-a', summary, 1), undefined, 'an event came');
  t.equal(remembered().recall('zone-a', summary, 2), undefined, 'the stream reconnected: events may have been missed');
  t.equal(remembered().recall('zone-a', summary, null), undefined, 'no stream');
  t.equal(remembered().recall('zone-a', { Id: 'd2', State: 'running' }, 1), undefined, 'made again under the same name');
  t.equal(remembered().recall('zone-a', { Id: 'd1', State: 'paused' }, 1), undefined, 'paused behind our back (no event is watched for that)');
  let now = 0;
  const aging = remembered(() => now);
  now = MAX_AGE_MS - 1;
  t.equal(aging.recall('zone-a', summary, 1), running, 'young enough');
  now = MAX_AGE_MS;
  t.equal(aging.recall('zone-a', summary, 1), undefined, 'too old');
});

t.test('an inspect taken before an event of its container, or without a live stream, is not remembered', async (t) => {
  const listed = new ListedContainers();
  const mark = listed.mark();
  listed.touched('zone-a'); // the event is read while the inspect's answer is on its way
  listed.remember('zone-a', 'd1', running, mark, 1);
  t.equal(listed.recall('zone-a', summary, 1), undefined);
  listed.remember('zone-a', 'd1', running, listed.mark(), null);
  t.equal(listed.recall('zone-a', summary, 1), undefined, 'no stream when it was taken');
  listed.remember('zone-a', 'd1', running, listed.mark(), 1);
  t.equal(listed.recall('zone-a', summary, 1), running, 'taken after the event');
});

t.test('containers no longer listed are forgotten', async (t) => {
  const listed = remembered();
  listed.keepOnly(new Set(['zone-b']));
  t.equal(listed.recall('zone-a', summary, 1), undefined);
});
