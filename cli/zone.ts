// The `zone` command. Each command lives in cli/commands/<name>.ts and registers itself.
import { Command } from 'commander';
import * as apply from './commands/apply.ts';
import * as cluster from './commands/cluster.ts';
import * as deleteCommand from './commands/delete.ts';
import * as events from './commands/events.ts';
import * as image from './commands/image.ts';
import * as keygen from './commands/keygen.ts';
import * as lint from './commands/lint.ts';
import * as logs from './commands/logs.ts';
import * as network from './commands/network.ts';
import * as node from './commands/node.ts';
import * as release from './commands/release.ts';
import * as seal from './commands/seal.ts';
import * as shell from './commands/shell.ts';
import * as sign from './commands/sign.ts';
import * as status from './commands/status.ts';
import * as upgrade from './commands/upgrade.ts';
import * as verify from './commands/verify.ts';
import * as volume from './commands/volume.ts';

const program = new Command('zone')
  .description('Zone: sign blueprints and drive Zone nodes')
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

// Command modules, one line each (keep sorted).
const commands: { register(program: Command): void }[] = [
  apply,
  cluster,
  deleteCommand,
  events,
  image,
  keygen,
  lint,
  logs,
  network,
  node,
  release,
  seal,
  shell,
  sign,
  status,
  upgrade,
  verify,
  volume,
];

for (const c of commands) c.register(program);
await program.parseAsync(process.argv);
