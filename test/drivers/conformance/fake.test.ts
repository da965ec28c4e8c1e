// The driver contract against the fake driver (the engine's unit tests stand on it), its
// state in a file so that a new instance adopts what the first made.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import { FakeDriver } from '../../../drivers/fake/driver.ts';
import { driverConformance } from './suite.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-fake-conformance-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const definition = normalizeWorkload({ name: 'probe', kind: 'container', image: 'zone/busybox' });

await driverConformance(t, {
  node: 'fake-node',
  makeDriver: () => new FakeDriver({ stateFile: join(dir, 'state.json') }),
  makeUnreachableDriver: () => {
    const driver = new FakeDriver();
    driver.setUnavailable('the fake engine is down');
    return driver;
  },
  spec: () => ({ node: 'fake-node', owner: 'ed25519:fake', blueprint: 'conformance', workload: 'probe', id: 'zone-conformance-probe', specHash: specHash(definition), definition }),
  // It runs no command: its log is the workload's state, its attach a loop.
  readyText: 'probe running',
  answer: (line) => line,
  startMs: 1000,
  eventMs: 1000,
});
