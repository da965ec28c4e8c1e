// What `zone cluster up --vm` checks before it boots anything.
import t from 'tap';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkWalkable, VmNodeError } from '../../../cli/cluster/vm.ts';

const base = await mkdtemp(join(tmpdir(), 'zone-vm-walk-'));
t.teardown(() => rm(base, { recursive: true, force: true }));

t.test('a cluster folder below one qemu cannot search is refused, naming that folder', async (t) => {
  const closed = join(base, 'closed');
  await mkdir(join(closed, 'cluster'), { recursive: true });
  await chmod(closed, 0o700);
  await chmod(base, 0o711);
  const err = await checkWalkable(join(closed, 'cluster')).then(() => null, (e: unknown) => e);
  t.ok(err instanceof VmNodeError);
  t.match((err as Error).message, `${closed} is not searchable by others (mode 700)`);
  await chmod(closed, 0o711);
  await t.resolves(checkWalkable(join(closed, 'cluster')), 'walkable once o+x');
  await t.resolves(checkWalkable(join(closed, 'cluster', 'not-yet')), 'a folder up will make is fine');
});
