// The tests' one way of waiting: bounded, and it names what it waited for.
import t from 'tap';
import { waitFor } from './wait.ts';

t.test('the first value other than undefined, null or false is answered', async (t) => {
  let tries = 0;
  t.equal(await waitFor(() => (++tries < 3 ? false : tries), { timeoutMs: 5_000, what: 'three tries', intervalMs: 1 }), 3);
});

t.test('after the timeout, the error names what was awaited and the last try\'s error', async (t) => {
  await t.rejects(waitFor(() => { throw new Error('not yet'); }, { timeoutMs: 100, what: 'the impossible', intervalMs: 10 }),
    { message: 'timed out after 100 ms waiting for the impossible (last error: not yet)' });
});

t.test('a try that never ends is taken as hung once hungAfterMs has passed after the deadline', async (t) => {
  const started = Date.now();
  await t.rejects(waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 200, what: 'a reply that never comes', hungAfterMs: 300 }),
    { message: /^timed out after 200 ms waiting for a reply that never comes \(last error: a try was still running: hung\?\)$/ });
  t.ok(Date.now() - started >= 500, 'not before');
});
