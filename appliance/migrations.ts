// Versioned schema of the store: entry i brings the database from user_version i to
// i + 1. Append only; never edit a released entry (nodes in the field ran it).
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE blueprints (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    document TEXT NOT NULL,          -- the full signed JSON, so it can be re-verified
    accepted_at TEXT NOT NULL,
    PRIMARY KEY (owner, name)
  );
  CREATE TABLE workloads (
    id TEXT PRIMARY KEY,             -- the engine-side id
    owner TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    workload TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    health TEXT,
    restarts INTEGER NOT NULL,
    attempt INTEGER NOT NULL,        -- restarts since the last stable period (drives the backoff)
    last_exit INTEGER,
    last_error TEXT,
    since TEXT NOT NULL,
    next_restart_at TEXT
  );
  CREATE INDEX workloads_by_blueprint ON workloads (owner, blueprint);
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a seq is never reused after trimming
    at TEXT NOT NULL,
    owner TEXT,
    blueprint TEXT,
    workload TEXT,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL
  );
  CREATE INDEX events_by_blueprint ON events (blueprint, seq);
  `,
];
