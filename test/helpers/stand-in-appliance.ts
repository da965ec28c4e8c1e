// A stand-in release's appliance, for supervisor tests that must reach each step of an
// upgrade exactly and in seconds: it speaks the supervisor's IPC protocol (child.ts) as
// api/main.ts does, migrates its store (zone.db's schema version),
// and answers GET /healthz with its version. A release folder's api/main.ts imports
// this (stand-in-release.ts writes such folders); its stand-in.json says how it behaves.
//   POST /upgrade/VERSION: asks the supervisor to switch to releases/VERSION (as an
//   appliance does once it has unpacked a release).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { STAND_IN_FILE, type StandInBehaviour } from './stand-in-release.ts';

const release = dirname(dirname(process.argv[1]!));
const behaviour = JSON.parse(readFileSync(join(release, STAND_IN_FILE), 'utf8')) as StandInBehaviour;
const dataDir = process.env.ZONE_DATA_DIR!;
const port = Number(process.env.STAND_IN_PORT);
const fail = (why: string) => {
  process.stderr.write(`stand-in ${behaviour.version}: ${why}\n`);
  process.exit(1);
};

const db = new Database(join(dataDir, 'zone.db'), { fileMustExist: true });
db.pragma('busy_timeout = 5000');
const schema = db.pragma('user_version', { simple: true }) as number;
if (schema > behaviour.schema) fail(`the store's schema ${schema} is newer than mine (${behaviour.schema})`);
db.pragma(`user_version = ${behaviour.schema}`);

const server = createServer((req, res) => {
  const upgrade = /^\/upgrade\/([\w.-]+)$/.exec(req.url ?? '');
  if (req.method === 'POST' && upgrade) {
    res.writeHead(202).end();
    process.send?.({ type: 'upgrade', to: { version: upgrade[1], dir: join(dataDir, 'releases', upgrade[1]!) } });
    return;
  }
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ version: behaviour.version }));
    return;
  }
  res.writeHead(404).end();
});
server.once('error', (err) => fail(`cannot listen: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  const url = `http://127.0.0.1:${port}`;
  if (behaviour.holdStoreMs) {
    db.exec('BEGIN IMMEDIATE');
    setTimeout(() => db.exec('COMMIT'), behaviour.holdStoreMs);
  }
  if (behaviour.ready !== false) process.send?.({ type: 'ready', version: behaviour.version, url, pseudokernel: 'absent', workloadStarts: 0 });
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => {
    server.close();
    server.closeAllConnections();
    if (db.inTransaction) db.exec('COMMIT');
    db.close();
    process.exit(0);
  }, behaviour.stopMs ?? 0);
};
process.once('SIGTERM', stop);
process.once('disconnect', stop);
