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

t.test('shared calls for one key run beside each other; an exclusive one waits for them, and later shared ones wait for it', async (t) => {
  const lock = new KeyedLock();
  const order: string[] = [];
  const s1Gate = gate();
  const s2Gate = gate();
  const xGate = gate();
  const s1 = lock.runShared('a', async () => { order.push('s1 start'); await s1Gate.promise; order.push('s1 end'); });
  const s2 = lock.runShared('a', async () => { order.push('s2 start'); await s2Gate.promise; order.push('s2 end'); throw new Error('s2 failed'); });
  const x = lock.run('a', async () => { order.push('x start'); await xGate.promise; order.push('x end'); return 'x'; });
  const s3 = lock.runShared('a', async () => { order.push('s3'); return 3; });
  await new Promise((resolve) => setImmediate(resolve));
  t.strictSame(order, ['s1 start', 's2 start'], 'both shared calls run at once; the exclusive one waits');
  s2Gate.open();
  await t.rejects(s2, /s2 failed/);
  t.strictSame(order, ['s1 start', 's2 start', 's2 end'], 'still waits for s1');
  s1Gate.open();
  await s1;
  await new Promise((resolve) => setImmediate(resolve));
  t.strictSame(order, ['s1 start', 's2 start', 's2 end', 's1 end', 'x start'], 'the exclusive call runs alone; s3 waits for it');
  xGate.open();
  t.equal(await x, 'x');
  t.equal(await s3, 3);
  t.strictSame(order.slice(-2), ['x end', 's3']);
});
