// Where releases live on a node and what the supervisor knows of them: the unpacked
// trees side by side under <data>/releases/<version>/, and releases/state.json (the
// running and previous release, an upgrade under way, the last upgrade's outcome),
// written whole and atomically so that a crash at any point leaves one of the two.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const RELEASES_DIR = 'releases';
const STATE_FILE = 'state.json';

/** A release a node can run: its version and its tree (a release's, or the tree the supervisor came with). */
export interface ReleaseRef { version: string; dir: string }

export interface UpgradeOutcome {
  from: string;
  to: string;
  outcome: 'succeeded' | 'rolled-back';
  /** Why it was rolled back, or what the gate saw. */
  reason: string;
  at: string;
  seconds: number;
}

/** An upgrade under way; `phase` says how far it got (what a restarted supervisor must undo). */
export interface PendingUpgrade {
  from: ReleaseRef;
  to: ReleaseRef;
  phase: 'stopping' | 'backed-up' | 'starting';
  startedAt: string;
}

export interface ReleaseState {
  /** What runs; null: the tree the supervisor came with. */
  current: ReleaseRef | null;
  previous: ReleaseRef | null;
  pending: PendingUpgrade | null;
  lastUpgrade: UpgradeOutcome | null;
}

export const EMPTY_STATE: ReleaseState = { current: null, previous: null, pending: null, lastUpgrade: null };

export const releasesDir = (dataDir: string) => join(dataDir, RELEASES_DIR);
export const releaseDir = (dataDir: string, version: string) => join(releasesDir(dataDir), version);
/** The store's copy taken before an upgrade starts the new release. */
export const storeBackupPath = (dataDir: string) => join(releasesDir(dataDir), 'store-backup.db');

/** The state (the empty one when none was written yet). */
export function readReleaseState(dataDir: string): ReleaseState {
  let text: string;
  try {
    text = readFileSync(join(releasesDir(dataDir), STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_STATE;
    throw err;
  }
  return { ...EMPTY_STATE, ...(JSON.parse(text) as Partial<ReleaseState>) };
}

/** Writes the state whole: a temporary file, fsync, rename. */
export function writeReleaseState(dataDir: string, state: ReleaseState): void {
  const dir = releasesDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const partial = join(dir, `${STATE_FILE}.partial`);
  const fd = openSync(partial, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, join(dir, STATE_FILE));
}
