// zone shell --key KEYFILE: an interactive shell over the grid for the key's owner,
// with line editing and a history kept across sessions (readline).
import { appendFileSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { readSigningKey } from '../../blueprints/keys.ts';
import { NodeClient, nodeOption, nodeUrl } from '../client.ts';
import { action, inFile } from '../output.ts';
import { runLine, splitWords } from '../shell/commands.ts';

const HISTORY_SIZE = 1000;

/** The history file: $ZONE_SHELL_HISTORY, else ~/.zone_history. */
const historyFile = () => process.env.ZONE_SHELL_HISTORY ?? join(homedir(), '.zone_history');

/** Past lines, newest first (as readline wants them); none when the file is not there yet. */
function loadHistory(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-HISTORY_SIZE).reverse();
  } catch {
    return [];
  }
}

export function register(program: Command): void {
  program
    .command('shell')
    .description("an interactive shell over the grid as the key's owner: ls, cat, put, rm on /zone/fs; ps; logs")
    .requiredOption('--key <file>', 'the owner\'s key file (zone keygen): whose grid the shell shows')
    .option(...nodeOption)
    .action(action(async (opts: { key: string; node?: string }) => {
      const owner = inFile(opts.key, () => readSigningKey(opts.key));
      const client = new NodeClient(nodeUrl(opts.node), opts.key);
      const file = historyFile();
      const rl = createInterface({
        input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY,
        history: loadHistory(file), historySize: HISTORY_SIZE, removeHistoryDuplicates: true, prompt: 'zone> ',
      });
      // The command running now (top runs until it is stopped): Enter or Ctrl-C stops it.
      let running: AbortController | null = null;
      /** Lines typed to stop a command: they are not commands themselves. */
      let swallow = 0;
      rl.on('line', () => {
        if (running && !running.signal.aborted) {
          running.abort();
          swallow++;
        }
      });
      // Ctrl-C drops the line being typed, as in other shells (readline would pause instead):
      // the line stays on screen with ^C, and emptying it redraws the prompt below.
      rl.on('SIGINT', () => {
        if (running && !running.signal.aborted) {
          running.abort();
          return;
        }
        process.stdout.write('^C\n');
        rl.write(null, { ctrl: true, name: 'u' });
      });
      if (process.stdin.isTTY) process.stdout.write(`owner ${owner.publicKey} at ${client.url}; help lists the commands\n`);
      rl.prompt();
      for await (const line of rl) {
        if (swallow > 0) {
          swallow--;
          continue;
        }
        // Appended line by line: a shell that is killed keeps what was typed.
        if (line.trim()) {
          try {
            appendFileSync(file, `${line.replace(/\n/g, ' ')}\n`, { mode: 0o600 });
          } catch {
            // No writable home: the shell works without a history file.
          }
        }
        // Only top runs until stopped; a line typed ahead during any other command is the next command.
        running = splitWords(line)[0] === 'top' ? new AbortController() : null;
        try {
          if (await runLine(line, { client, owner, out: process.stdout, err: process.stderr, ...(running ? { signal: running.signal } : {}) }) === 'exit') break;
        } catch (err) {
          process.stderr.write(`${(err as Error).message.split('\n')[0]}\n`);
        } finally {
          running = null;
        }
        rl.prompt();
      }
      rl.close();
    }));
}
