// proc/ snapshots: ProcTable.list() at most once per period, shared while in flight.
import t from 'tap';
import type { ProcEntry, ProcTable } from '../../../../appliance/pseudokernel/interfaces.ts';
import { ProcSnapshots } from '../../../../appliance/pseudokernel/mount/proc-view.ts';

const ROW: ProcEntry = { node: 'n1', blueprint: 'bp', workload: 'web', kind: 'container', state: 'running', restarts: 0, since: '2025-01-01T00:00:00.000Z' };

function countingTable(list: () => Promise<ProcEntry[]>): ProcTable & { calls: number } {
  const table = { calls: 0, list: () => (table.calls++, list()) };
  return table;
}

t.test('one list per period, however many views are asked for', async (t) => {
  let now = 0;
  const table = countingTable(async () => [ROW]);
  const snapshots = new ProcSnapshots(table, 'n1', 1000, () => now);
  await Promise.all([snapshots.view(), snapshots.view()]);
  now = 999;
  await snapshots.view();
  t.equal(table.calls, 1);
  now = 1000;
  await snapshots.view();
  t.equal(table.calls, 2);
});

t.test('a list still running is shared, even past the period', async (t) => {
  let now = 0;
  let finish: (rows: ProcEntry[]) => void = () => {};
  const table = countingTable(() => new Promise((resolve) => (finish = resolve)));
  const snapshots = new ProcSnapshots(table, 'n1', 1000, () => now);
  const first = snapshots.view();
  now = 5000;
  const second = snapshots.view();
  finish([ROW]);
  t.equal(await first, await second);
  t.equal(table.calls, 1);
});

t.test('a failed list is not retried before the period is over', async (t) => {
  let now = 0;
  let fail = true;
  const table = countingTable(async () => {
    if (fail) throw new Error('proc table unreachable');
    return [ROW];
  });
  const snapshots = new ProcSnapshots(table, 'n1', 1000, () => now);
  await t.rejects(snapshots.view(), /unreachable/);
  fail = false;
  await t.rejects(snapshots.view(), /unreachable/);
  t.equal(table.calls, 1);
  now = 1500;
  t.equal((await snapshots.view()).type, 'dir');
  t.equal(table.calls, 2);
});
