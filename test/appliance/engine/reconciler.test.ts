import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import pino from 'pino';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { Reconciler } from '../../../appliance/engine/reconciler.ts';
import { EventLog } from '../../../appliance/events.ts';
import { Store } from '../../../appliance/store.ts';
import type { ZoneEvent } from '../../../appliance/types.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = 'reconcilertest';
const OWNER = 'ed25519:' + 'R'.repeat(43) + '=';
const BACKOFF = { firstMs: 100, maxMs: 800, stableMs: 60_000, crashloopAfter: 2 };

function blueprint(name: string, version: number, workloads: Blueprint['workloads'], extra: Partial<Blueprint> = {}): Blueprint {
  return { name, version, owner: OWNER, node: NODE, workloads, ...extra };
}

function harness(t: Test, existing?: { dir: string; driver: FakeDriver }, concurrency?: number, clock?: () => Date) {
  const dir = existing?.dir ?? mkdtempSync(join(tmpdir(), 'zone-reconciler-'));
  const store = new Store(join(dir, 'zone.db'));
  const logger = pino({ level: 'silent' });
  const events = new EventLog(store, logger);
  const seen: ZoneEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const driver = existing?.driver ?? new FakeDriver();
  const engine = new Reconciler({ node: NODE, store, drivers: new Map([['container', driver]]), events, logger, backoff: BACKOFF, resyncMs: 60_000, ...(concurrency ? { concurrency } : {}), ...(clock ? { clock } : {}) });
  t.teardown(async () => {
    await engine.stop();
    store.close();
    if (!existing) rmSync(dir, { recursive: true, force: true });
  });
  const id = (bp: string, w: string) => workloadId(NODE, OWNER, bp, w);
  const status = (bp: string, w: string) => engine.statuses().get(id(bp, w));
  const apply = (bp: Blueprint) => {
    store.putBlueprint(bp, new Date().toISOString());
    engine.wake();
  };
  return { dir, store, driver, engine, seen, id, status, apply };
}

const box = (name: string, extra: Record<string, unknown> = {}) => ({ name, kind: 'container' as const, image: 'zone/busybox', ...extra });

t.test('a new blueprint is created and running, and then plans zero steps', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('web', 1, [box('a'), box('b')]));
  await waitFor(() => h.status('web', 'a')?.state === 'running' && h.status('web', 'b')?.state === 'running', { timeoutMs: 5000, what: 'both running' });
  await h.engine.idle();
  const calls = { ...h.driver.calls };
  await h.engine.pass();
  await h.engine.idle();
  t.equal(h.driver.calls.ensure, calls.ensure, 'no ensure on a converged pass');
  t.equal(h.driver.calls.create, 2);
  t.same(h.seen.filter((e) => e.workload === 'a').map((e) => [e.from, e.to]), [[null, 'pending'], ['pending', 'running']]);
  t.ok(h.seen.every((e, i) => i === 0 || e.seq > h.seen[i - 1]!.seq), 'events are numbered in order');
});

t.test('a first crash is restarted at once, then after a backoff that doubles, and crashloop shows', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('crashy', 1, [box('a')]));
  await waitFor(() => h.status('crashy', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    const crashedAt = Date.now();
    h.driver.crash(h.id('crashy', 'a'), 3);
    if (i > 0) {
      await waitFor(() => ['backoff', 'crashloop'].includes(h.status('crashy', 'a')?.state ?? ''), { timeoutMs: 5000, what: `backoff ${i}` });
      t.equal(h.status('crashy', 'a')?.lastError, 'exited with code 3');
    }
    await waitFor(() => h.status('crashy', 'a')?.state === 'running' && h.status('crashy', 'a')?.restarts === i + 1, { timeoutMs: 5000, what: `restart ${i}` });
    delays.push(Date.now() - crashedAt);
  }
  // The first restart waits in no backoff (its events below go straight back to running); a time bound would only measure the machine's load.
  t.ok(delays[1]! >= 100, `second after >= 100 ms (${delays[1]})`);
  t.ok(delays[2]! >= 200, `third after >= 200 ms (${delays[2]})`);
  t.ok(delays[3]! >= 400, `fourth after >= 400 ms (${delays[3]})`);
  t.equal(h.status('crashy', 'a')?.restarts, 4);
  t.ok(h.seen.some((e) => e.to === 'crashloop'), 'crashloop was entered');
  const first = h.seen.filter((e) => e.workload === 'a').slice(2, 4).map((e) => [e.from, e.to, e.reason]);
  t.same(first, [['running', 'pending', 'restarting (exited with code 3)'], ['pending', 'running', 'restarted (exited with code 3)']], 'the immediate restart is two events that say why, with no backoff between');
  t.match(h.seen.find((e) => e.from === 'backoff' && e.to === 'running')?.reason, /restarted \(exited with code 3\)/, 'the event says why it was restarted');
});

t.test('an unhealthy workload is restarted like a crashed one', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('sick', 1, [box('a', { health: { command: ['true'] } })]));
  await waitFor(() => h.status('sick', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  h.driver.setHealth(h.id('sick', 'a'), 'unhealthy');
  await waitFor(() => h.status('sick', 'a')?.restarts === 1 && h.status('sick', 'a')?.state === 'running', { timeoutMs: 5000, what: 'restarted' });
  t.equal(h.driver.calls.stop, 1, 'stopped, then started again');
  t.ok(h.seen.some((e) => e.to === 'pending' && /restarting \(unhealthy\)/.test(e.reason)), 'the first restart is at once, and says why');
});

t.test('drift is repaired: removed or changed behind the back', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('drift', 1, [box('a'), box('b')]));
  await waitFor(() => h.status('drift', 'b')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  h.driver.removeBehindBack(h.id('drift', 'a'));
  await waitFor(() => h.driver.snapshot().some((w) => w.id === h.id('drift', 'a')), { timeoutMs: 5000, what: 'a created again' });
  h.driver.changeBehindBack(h.id('drift', 'b'));
  h.engine.wake(); // a change without an event is found by the next pass (here asked for, in life the resync)
  await waitFor(() => h.driver.snapshot().find((w) => w.id === h.id('drift', 'b'))?.specHash !== 'changed-behind-the-back', { timeoutMs: 5000, what: 'b replaced' });
  await h.engine.idle();
  t.equal(h.driver.snapshot().length, 2, 'nothing duplicated');
  t.ok(h.seen.some((e) => /created again \(missing from its engine\)/.test(e.reason) || e.workload === 'a'));
});

t.test('an unreachable engine marks its workloads unknown; they are repaired when it returns', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('gone', 1, [box('a')]));
  await waitFor(() => h.status('gone', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  h.driver.setUnavailable('socket closed');
  await waitFor(() => h.status('gone', 'a')?.state === 'unknown', { timeoutMs: 5000, what: 'unknown' });
  t.match(h.status('gone', 'a')?.lastError, /socket closed/);
  // While it is away the workload died (a daemon restart kills containers).
  h.driver.setUnavailable(null);
  h.driver.removeBehindBack(h.id('gone', 'a'));
  await waitFor(() => h.status('gone', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running again' });
  t.equal(h.driver.snapshot().length, 1);
});

t.test('restart policy never: an exit stays exited', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('once', 1, [box('a', { restart: 'never' })]));
  await waitFor(() => h.status('once', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  h.driver.crash(h.id('once', 'a'), 1);
  await waitFor(() => h.status('once', 'a')?.state === 'exited', { timeoutMs: 5000, what: 'exited' });
  await h.engine.pass();
  await h.engine.idle();
  t.equal(h.status('once', 'a')?.lastExit, 1);
  t.equal(h.driver.calls.start, 1, 'never started again');
});

t.test('restart() on request: stopped and started again whatever the policy, with its events; unknown and busy workloads are said to be', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('asked', 1, [box('a', { restart: 'never' })]));
  await waitFor(() => h.status('asked', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  h.driver.crash(h.id('asked', 'a'), 1);
  await waitFor(() => h.status('asked', 'a')?.state === 'exited', { timeoutMs: 5000, what: 'exited' });
  await h.engine.idle();
  t.equal(h.engine.restart({ owner: OWNER, blueprint: 'asked', workload: 'nope' }, 'asked'), 'unknown');
  t.equal(h.engine.restart({ owner: OWNER, blueprint: 'asked', workload: 'a' }, 'asked by its owner'), 'restarting');
  t.equal(h.engine.restart({ owner: OWNER, blueprint: 'asked', workload: 'a' }, 'asked by its owner'), 'busy', 'while the first restart runs');
  await waitFor(() => h.status('asked', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running again' });
  await h.engine.idle();
  t.equal(h.status('asked', 'a')?.restarts, 1);
  t.same(h.seen.filter((e) => e.workload === 'a').slice(-2).map((e) => [e.from, e.to, e.reason]),
    [['exited', 'pending', 'restarting (asked by its owner)'], ['pending', 'running', 'restarted (asked by its owner)']]);
});

t.test('a spec the engine refuses is failed, not retried fast', async (t) => {
  const h = harness(t);
  h.driver.rejectImage('missing/image');
  h.engine.start();
  h.apply(blueprint('bad', 1, [box('a', { image: 'missing/image' })]));
  await waitFor(() => h.status('bad', 'a')?.state === 'failed', { timeoutMs: 5000, what: 'failed' });
  t.match(h.status('bad', 'a')?.lastError, /image missing\/image not found/);
  const ensures = h.driver.calls.ensure;
  await h.engine.pass();
  await h.engine.idle();
  t.equal(h.driver.calls.ensure, ensures, 'waits for the slow retry');
});

t.test('a new version replaces changed workloads and removes dropped ones; a tombstone removes all', async (t) => {
  const h = harness(t);
  h.engine.start();
  h.apply(blueprint('ver', 1, [box('a'), box('b')]));
  await waitFor(() => h.status('ver', 'b')?.state === 'running', { timeoutMs: 5000, what: 'v1 running' });
  const before = h.driver.snapshot().find((w) => w.workload === 'a')!;
  h.apply(blueprint('ver', 2, [box('a', { env: { X: '1' } })]));
  await waitFor(() => !h.status('ver', 'b') && h.driver.snapshot().find((w) => w.workload === 'a')?.specHash !== before.specHash, { timeoutMs: 5000, what: 'v2 applied' });
  await h.engine.idle();
  t.same(h.driver.snapshot().map((w) => w.workload), ['a']);
  h.apply(blueprint('ver', 3, [], { delete: true }));
  await waitFor(() => h.driver.snapshot().length === 0 && h.engine.statuses().size === 0, { timeoutMs: 5000, what: 'all removed' });
  t.ok(h.seen.some((e) => e.workload === 'a' && e.to === 'removed'));
});

t.test('after an appliance restart running workloads are adopted, not restarted', async (t) => {
  const first = harness(t);
  first.engine.start();
  first.apply(blueprint('keep', 1, [box('a')]));
  await waitFor(() => first.status('keep', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  await first.engine.stop();
  first.store.close();
  const startedAt = first.driver.snapshot()[0]?.startedAt;
  const calls = { ...first.driver.calls };
  const second = harness(t, { dir: first.dir, driver: first.driver });
  second.engine.start();
  await second.engine.idle();
  t.equal(second.status('keep', 'a')?.state, 'running');
  t.equal(first.driver.calls.ensure, calls.ensure, 'no ensure');
  t.equal(first.driver.snapshot()[0]?.startedAt, startedAt, 'same run');
});

t.test('steps run at most `concurrency` at once and never two at once for one workload', async (t) => {
  const h = harness(t, { dir: mkdtempSync(join(tmpdir(), 'zone-reconciler-')), driver: new FakeDriver({ ensureDelayMs: 20 }) }, 3);
  t.teardown(() => rmSync(h.dir, { recursive: true, force: true }));
  h.engine.start();
  const names = Array.from({ length: 12 }, (_, i) => `w${i}`);
  h.apply(blueprint('many', 1, names.map((n) => box(n))));
  await waitFor(() => names.every((n) => h.status('many', n)?.state === 'running'), { timeoutMs: 10_000, what: 'all running' });
  for (let round = 0; round < 3; round++) {
    for (const n of names) h.driver.crash(h.id('many', n), 1);
    for (let i = 0; i < 20; i++) h.engine.wake(); // a storm of wake-ups
    await waitFor(() => names.every((n) => h.status('many', n)?.state === 'running' && h.status('many', n)?.restarts === round + 1), { timeoutMs: 10_000, what: `round ${round} restarted` });
  }
  t.equal(h.driver.concurrency.peak, 3, 'bounded by concurrency');
  t.same([...h.driver.concurrency.overlapping], [], 'serialized per workload');
  t.equal(h.driver.calls.create, 12, 'nothing created twice');
});

t.test('at its expiry a blueprint\'s workloads are removed as by a tombstone, told once; a later version brings it back', async (t) => {
  let now = new Date('2030-01-01T00:00:00Z');
  const clock = () => now;
  const h = harness(t, undefined, undefined, clock);
  h.engine.start();
  h.apply(blueprint('lease', 1, [box('a')], { expires: '2030-01-01T01:00:00Z' }));
  await waitFor(() => h.status('lease', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running' });
  now = new Date('2030-01-01T00:59:59Z');
  await h.engine.pass();
  await h.engine.idle();
  t.equal(h.status('lease', 'a')?.state, 'running', 'a second before its expiry it runs');

  now = new Date('2030-01-01T01:00:00Z');
  h.engine.wake();
  await waitFor(() => h.status('lease', 'a') === undefined && h.driver.snapshot().length === 0, { timeoutMs: 5000, what: 'the expired workload removed' });
  await h.engine.pass();
  await h.engine.idle();
  const expired = (events: ZoneEvent[]) => events.filter((e) => e.blueprint === 'lease' && e.workload === null && e.to === 'expired');
  t.equal(expired(h.seen).length, 1, 'one event says so');
  t.match(expired(h.seen)[0], { from: 'v1', reason: /expired at 2030-01-01T01:00:00Z: its workloads are removed as by a tombstone/ });
  t.same(h.seen.filter((e) => e.workload === 'a').map((e) => e.to).slice(-2), ['removing', 'removed']);
  t.match(h.store.blueprints(), [{ name: 'lease', version: 1, deleted: false }], 'the stored version stays (a later version must still be higher)');

  // A restart does not tell it again.
  await h.engine.stop();
  const again = harness(t, { dir: h.dir, driver: h.driver }, undefined, clock);
  again.engine.start();
  await again.engine.pass();
  await again.engine.idle();
  t.same(expired(again.seen), [], 'not told again after a restart');
  again.apply(blueprint('lease', 2, [box('a')], { expires: '2030-01-02T00:00:00Z' }));
  await waitFor(() => again.status('lease', 'a')?.state === 'running', { timeoutMs: 5000, what: 'running again with version 2' });
  t.pass('a later version with a later expiry runs again');
});
