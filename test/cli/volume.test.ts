// zone volume ls: one row per volume, a released one with when it is deleted.
import t from 'tap';
import { volumeTable } from '../../cli/commands/volume.ts';

t.test('the table shows size, use, who mounts it and pending deletions', async (t) => {
  const owner = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
  const out = volumeTable([
    { name: 'db', owner, blueprint: 'notes', kind: 'filesystem', sizeBytes: 64 * 2 ** 20, usedBytes: 15 * 1024, attachedTo: ['app', 'backup'], state: 'ready', deleteAt: null },
    { name: 'old', owner, blueprint: 'notes', kind: 'block', sizeBytes: 2 ** 30, usedBytes: 0, attachedTo: [], state: 'released', deleteAt: '2026-11-30T12:00:00.000Z' },
  ]);
  t.match(out, /db\s+│ ed25519:AQEBAQEB\.\.\.\s+│ notes\s+│ filesystem │ 64\.0 MiB\s+│ 15\.0 KiB\s+│ app, backup\s+│ ready/);
  t.match(out, /old .* block .* 1\.0 GiB .* - .* released: deleted at 2026-11-30T12:00:00\.000Z/);
});
