import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { MIGRATIONS } from '../../appliance/migrations.ts';
import { Store } from '../../appliance/store.ts';

const OWNER = 'ed25519:' + 'S'.repeat(43) + '=';

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'zone-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'zone.db');
}

t.test('blueprints are kept with their signatures, latest version per owner and name', async (t) => {
  const path = tmp(t);
  const store = new Store(path);
  const sig = [{ key: OWNER, sig: 'A'.repeat(86) + '==' }];
  store.putBlueprint({ name: 'a', version: 1, owner: OWNER, node: 'n', signatures: sig }, '2026-01-01T00:00:00Z');
  store.putBlueprint({ name: 'a', version: 2, owner: OWNER, node: 'n', delete: true, signatures: sig }, '2026-01-02T00:00:00Z');
  store.close();
  const reopened = new Store(path);
  t.teardown(() => reopened.close());
  t.equal(reopened.storedVersion(OWNER, 'a'), 2);
  t.equal(reopened.storedVersion(OWNER, 'b'), null);
  t.match(reopened.blueprints(), [{ name: 'a', version: 2, deleted: true, document: { signatures: sig } }]);
});

t.test('the database runs in WAL with synchronous FULL and is at the latest schema version', async (t) => {
  const path = tmp(t);
  new Store(path).close();
  t.equal(statSync(path).mode & 0o777, 0o600, 'readable by the node only');
  const db = new Database(path);
  t.teardown(() => db.close());
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  const store = new Store(path);
  t.teardown(() => store.close());
  t.equal((store as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true }), 2, 'FULL');
});

t.test('a store written by a newer appliance is refused', async (t) => {
  const path = tmp(t);
  const db = new Database(path);
  db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  db.close();
  t.throws(() => new Store(path), /newer than this appliance knows/);
});

t.test('the event log is bounded and seqs never go back', async (t) => {
  const store = new Store(tmp(t), 100);
  t.teardown(() => store.close());
  const e = (i: number) => store.appendEvent({ at: 'now', owner: null, blueprint: i % 2 ? 'odd' : 'even', workload: null, from: null, to: `s${i}`, reason: 'test' });
  const seqs = Array.from({ length: 250 }, (_, i) => e(i).seq);
  t.same(seqs, Array.from({ length: 250 }, (_, i) => i + 1));
  const kept = store.events({ limit: 10_000 });
  t.equal(kept.length, 100);
  t.equal(kept[0]?.seq, 151);
  t.same(store.events({ after: 245 }).map((x) => x.seq), [246, 247, 248, 249, 250]);
  t.ok(store.events({ blueprint: 'odd' }).every((x) => x.blueprint === 'odd'));
});
