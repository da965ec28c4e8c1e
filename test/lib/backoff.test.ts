import t from 'tap';
import { DEFAULT_BACKOFF, ranStably, restartDelayMs, waitingState } from '../../lib/backoff.ts';

t.test('the first restart is immediate; from the second the delay starts short, doubles, and is capped', async (t) => {
  t.same([0, 1, 2, 3, 4, 5].map((a) => restartDelayMs(a)), [0, 1000, 2000, 4000, 8000, 16000]);
  t.equal(restartDelayMs(9), 256_000);
  t.equal(restartDelayMs(10), DEFAULT_BACKOFF.maxMs, '2^9 s is past the 5 min cap');
  t.equal(restartDelayMs(10_000), DEFAULT_BACKOFF.maxMs, 'a huge attempt count stays finite and capped');
  t.equal(restartDelayMs(-1), 0, 'a negative count is treated as the first');
  t.equal(restartDelayMs(Number.NaN), 0, 'so is a count that is not a number');
});

t.test('a run counts as stable after the stable period', async (t) => {
  const until = new Date('2026-06-01T12:10:00Z');
  t.equal(ranStably('2026-06-01T12:00:00Z', until), true, '10 minutes exactly');
  t.equal(ranStably('2026-06-01T12:00:01Z', until), false);
  t.equal(ranStably(null, until), false, 'never started');
  t.equal(ranStably('not a date', until), false);
});

t.test('the waiting state becomes crashloop after repeated restarts', async (t) => {
  t.same([0, 1, 2, 3, 7].map((a) => waitingState(a)), ['backoff', 'backoff', 'backoff', 'crashloop', 'crashloop']);
});
