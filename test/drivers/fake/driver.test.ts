import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import { EngineUnavailableError, type DriverEvent, type WorkloadSpec } from '../../../drivers/contract.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { waitFor } from '../../helpers/wait.ts';

const definition = normalizeWorkload({ name: 'w', kind: 'container', image: 'zone/busybox' });
const spec: WorkloadSpec = { node: 'n', owner: 'o', blueprint: 'b', workload: 'w', id: 'zone-b-w-00000000', specHash: specHash(definition), definition };

t.test('the fake driver keeps the contract: idempotent ensure, list by node, remove, events', async (t) => {
  const d = new FakeDriver();
  const events: DriverEvent[] = [];
  d.watch((e) => events.push(e));
  const first = await d.ensure(spec);
  const second = await d.ensure(spec);
  t.equal(first.state, 'running');
  t.equal(second.startedAt, first.startedAt, 'ensure on a running one changes nothing');
  t.equal(d.calls.create, 1);
  t.same((await d.list('n')).map((w) => w.id), [spec.id]);
  t.same(await d.list('other'), []);
  d.crash(spec.id, 7);
  t.match(await d.inspect(spec.id), { state: 'exited', exitCode: 7 });
  await d.remove(spec.id);
  await d.remove(spec.id);
  t.equal(await d.inspect(spec.id), null);
  await waitFor(() => events.length === 3, { timeoutMs: 1000, what: 'events' });
  t.same(events.map((e) => e.type), ['started', 'exited', 'removed']);
});

t.test('an unavailable fake engine throws EngineUnavailableError until it is back', async (t) => {
  const d = new FakeDriver();
  d.setUnavailable('down for the test');
  await t.rejects(d.list('n'), EngineUnavailableError);
  t.match(await d.fingerprint(), { available: false, reason: 'down for the test' });
  d.setUnavailable(null);
  t.same(await d.list('n'), []);
});
