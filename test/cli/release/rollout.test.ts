import t from 'tap';
import { rolloutWaves } from '../../../cli/release/rollout.ts';

t.test('a rollout is the canaries, then the rest in batches', async (t) => {
  t.same(rolloutWaves(['a', 'b', 'c'], 1, 2), [['a'], ['b', 'c']]);
  t.same(rolloutWaves(['a', 'b', 'c'], 1, 1), [['a'], ['b'], ['c']]);
  t.same(rolloutWaves(['a', 'b', 'c'], 0, 1), [['a'], ['b'], ['c']], 'no canary: waves of the batch');
  t.same(rolloutWaves(['a', 'b'], 5, 1), [['a', 'b']], 'more canaries than nodes: one wave');
  t.same(rolloutWaves([], 1, 1), []);
});
