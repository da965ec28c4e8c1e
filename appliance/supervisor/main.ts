// `npm run supervise`: the node's entry point. Runs the current release's appliance
// (api/main.ts of the release, or of this tree before any upgrade) under the supervisor;
// stops it on SIGINT/SIGTERM (workloads keep running).
// $ZONE_UPGRADE_GATE_SECONDS: how long a new release has to become healthy (default 120).
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DATA_DIR_MODE, loadNodeConfig } from '../config.ts';
import { ZoneError } from '../../lib/errors.ts';
import { releasesDir } from '../release/state.ts';
import { Supervisor } from './supervisor.ts';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const { version } = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string };

function gateSeconds(env: NodeJS.ProcessEnv): number {
  const value = Number(env.ZONE_UPGRADE_GATE_SECONDS ?? 120);
  if (!Number.isInteger(value) || value < 1 || value > 3600) throw new ZoneError('INVALID', '$ZONE_UPGRADE_GATE_SECONDS: a whole number of seconds, 1 to 3600');
  return value;
}

async function main(): Promise<void> {
  const config = loadNodeConfig();
  mkdirSync(releasesDir(config.dataDir), { recursive: true, mode: DATA_DIR_MODE });
  const supervisor = new Supervisor({
    dataDir: config.dataDir, factory: { version, dir: root }, env: process.env, gateMs: gateSeconds(process.env) * 1000, stopMs: 15_000,
    log: (line) => process.stderr.write(`zone supervisor: ${line}\n`),
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    supervisor.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await supervisor.start();
}

main().catch((err: unknown) => {
  process.stderr.write(err instanceof ZoneError ? `zone supervisor: ${err.message}\n` : `zone supervisor: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
