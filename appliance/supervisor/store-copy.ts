// The supervisor's hold on the node's store while no appliance runs: a consistent copy
// before an upgrade (SQLite VACUUM INTO), putting it back on a rollback, and the events
// of an upgrade. Plain SQL on the events table (the first migration's, never changed):
// the supervisor is older than the releases it starts and must not migrate their store.
import { copyFileSync, existsSync, fsyncSync, openSync, closeSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const STORE_FILE = 'zone.db';
const storePath = (dataDir: string) => join(dataDir, STORE_FILE);

/** Copies the store to `backup` (replacing an older copy); false when the node has no store yet. */
export function backupStore(dataDir: string, backup: string): boolean {
  if (!existsSync(storePath(dataDir))) return false;
  rmSync(backup, { force: true });
  const db = new Database(storePath(dataDir), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('VACUUM INTO ?').run(backup);
  } finally {
    db.close();
  }
  chmodSync(backup, 0o600);
  return true;
}

/** Puts the copy back as the store (its WAL and shared memory dropped); nothing runs on the store meanwhile. */
export function restoreStore(dataDir: string, backup: string): void {
  const path = storePath(dataDir);
  const partial = `${path}.restoring`;
  copyFileSync(backup, partial);
  const fd = openSync(partial, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(partial, 0o600);
  rmSync(`${path}-wal`, { force: true });
  rmSync(`${path}-shm`, { force: true });
  renameSync(partial, path);
}

/** An event of the node (no owner, blueprint or workload): `to` is the upgrade's step. Skipped when there is no store yet. */
export function recordNodeEvent(dataDir: string, to: string, reason: string): void {
  if (!existsSync(storePath(dataDir))) return;
  const db = new Database(storePath(dataDir), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('INSERT INTO events (at, owner, blueprint, workload, from_state, to_state, reason) VALUES (?, NULL, NULL, NULL, NULL, ?, ?)')
      .run(new Date().toISOString(), to, reason);
  } finally {
    db.close();
  }
}
