import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import { EngineUnavailableError, type DriverEvent, type WorkloadSpec } from '../../../drivers/contract.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { waitFor } from '../../helpers/wait.ts';

const definition = normalizeWorkload({ name: 'w', kind: 'container', image: 'zone/busybox' });
const spec: WorkloadSpec = { node: 'n', owner: 'o', blueprint: 'b', workload: 'w', id: 'zone-b-w-00000000', specHash: specHash(definition), definition };

// The contract's cases are in test/drivers/conformance/fake.test.ts; these are the test controls.
t.test('a crash exits it with its code and says so; ensure starts it again', async (t) => {
  const d = new FakeDriver();
  const events: DriverEvent[] = [];
  d.watch((e) => events.push(e));
  await d.ensure(spec);
  d.crash(spec.id, 7, true);
  t.match(await d.inspect(spec.id), { state: 'exited', exitCode: 7, oomKilled: true });
  t.match(await d.ensure(spec), { state: 'running', exitCode: null, oomKilled: false });
  t.same(d.calls, { ensure: 2, create: 1, start: 2, stop: 0, remove: 0, list: 0 });
  await waitFor(() => events.length === 3, { timeoutMs: 1000, what: 'events' });
  t.match(events, [{ type: 'started' }, { type: 'exited', exitCode: 7, oomKilled: true }, { type: 'started' }]);
});

t.test('an unavailable fake engine throws EngineUnavailableError until it is back', async (t) => {
  const d = new FakeDriver();
  d.setUnavailable('down for the test');
  await t.rejects(d.list('n'), EngineUnavailableError);
  t.match(await d.fingerprint(), { available: false, reason: 'down for the test' });
  d.setUnavailable(null);
  t.same(await d.list('n'), []);
});
