import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { removeAbandonedIncoming } from '../../../appliance/release/install.ts';

t.test('what a killed appliance was unpacking (and its copy of the bundle, in a cluster) is removed at the next start; releases and other folders stay', async (t) => {
  const dataDir = t.testdir({
    releases: {
      '.incoming-0123456789abcdef': { 'api': { 'main.ts': 'half' } },
      '.incoming-fedcba9876543210': {},
      '.upload-0123456789abcdef.tar.gz': 'half a bundle',
      '0.2.0': { 'api': { 'main.ts': 'whole' } },
      '.removing-abcdef': {},
    },
  });
  t.equal(await removeAbandonedIncoming(dataDir), 3);
  t.notOk(existsSync(join(dataDir, 'releases/.incoming-0123456789abcdef')));
  t.notOk(existsSync(join(dataDir, 'releases/.incoming-fedcba9876543210')));
  t.notOk(existsSync(join(dataDir, 'releases/.upload-0123456789abcdef.tar.gz')));
  t.ok(existsSync(join(dataDir, 'releases/0.2.0/api/main.ts')), 'an installed release stays');
  t.ok(existsSync(join(dataDir, 'releases/.removing-abcdef')), 'the supervisor finishes its own removals');
  t.equal(await removeAbandonedIncoming(dataDir), 0);
});

t.test('a node that never received a release has nothing to remove', async (t) => {
  t.equal(await removeAbandonedIncoming(t.testdir({})), 0);
});
