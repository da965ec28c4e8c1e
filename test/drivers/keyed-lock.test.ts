import t from 'tap';
import { KeyedLock } from '../../drivers/keyed-lock.ts';

/** A promise settled from outside. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

t.test('calls for one key run one after the other, even after a failure; other keys do not wait', async (t) => {
  const lock = new KeyedLock();
  const order: string[] = [];
  const first = gate();
  const a1 = lock.run('a', async () => { order.push('a1 start'); await first.promise; order.push('a1 end'); throw new Error('a1 failed'); });
  const a2 = lock.run('a', async () => { order.push('a2'); return 2; });
  const b = await lock.run('b', async () => { order.push('b'); return 'b'; });
  t.equal(b, 'b');
  t.strictSame(order, ['a1 start', 'b'], 'b ran while a1 held a; a2 waits');
  first.open();
  await t.rejects(a1, /a1 failed/);
  t.equal(await a2, 2);
  t.strictSame(order, ['a1 start', 'b', 'a1 end', 'a2']);
});
