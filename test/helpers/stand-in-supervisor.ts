// The supervisor as appliance/supervisor/main.ts runs it, for tests with stand-in
// releases (stand-in-appliance.ts): the factory release is $STAND_IN_FACTORY, the gate
// $STAND_IN_GATE_MS long. $STAND_IN_FREEZE (a regular expression): at the first log line
// it matches, the supervisor writes "frozen: LINE" and stops dead (its event loop
// blocked, as if the CPU never came back), so that a test can kill -9 it at that
// exact step of an upgrade; the steps between two log lines run without a pause.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor } from '../../appliance/supervisor/supervisor.ts';
import { STAND_IN_FILE, type StandInBehaviour } from './stand-in-release.ts';

const factoryDir = process.env.STAND_IN_FACTORY!;
const { version } = JSON.parse(readFileSync(join(factoryDir, STAND_IN_FILE), 'utf8')) as StandInBehaviour;
const freeze = process.env.STAND_IN_FREEZE ? new RegExp(process.env.STAND_IN_FREEZE) : null;

const supervisor = new Supervisor({
  dataDir: process.env.ZONE_DATA_DIR!, factory: { version, dir: factoryDir }, env: process.env, gateMs: Number(process.env.STAND_IN_GATE_MS), stopMs: 5000,
  backoff: { firstMs: 100, maxMs: 1000, stableMs: 60_000, crashloopAfter: 3 },
  log: (line) => {
    process.stderr.write(`supervisor: ${line}\n`);
    if (freeze?.test(line)) {
      process.stderr.write(`frozen: ${line}\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
  },
});
process.once('SIGTERM', () => void supervisor.stop().then(() => process.exit(0)));
await supervisor.start();
