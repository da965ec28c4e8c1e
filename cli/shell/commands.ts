// What each line of `zone shell` does: the owner's /zone/fs (ls, cat, put, mkdir, rm), the
// grid's process table (ps, top, kill), its pipes (pipe) and this node's logs, through
// the node API. A failed
// command prints one line and the shell goes on; only `exit` (or end of input) ends it.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import Table from 'cli-table3';
import type { PipeLag, ProcEntry } from '../../appliance/pseudokernel/interfaces.ts';
import type { SigningKeyPair } from '../../lib/ed25519.ts';
import type { NodeClient } from '../client.ts';
import { CliFailure } from '../output.ts';
import { age } from '../commands/status.ts';

export interface ShellContext {
  client: NodeClient;
  owner: SigningKeyPair;
  out: Writable;
  err: Writable;
  /** Aborted when the user stops the command (Enter or Ctrl-C): `top` ends then. */
  signal?: AbortSignal;
}

export const HELP = [
  'ls [PATH]                 list a directory of your /zone/fs (default /)',
  'cat PATH                  print a file of your /zone/fs',
  'put LOCALFILE PATH        copy a local file to PATH (PATH/ keeps its name)',
  'mkdir PATH                make a directory (its parent must exist)',
  'rm PATH                   remove a file or an empty directory',
  'ps                        every workload of yours on every node',
  'top [SECONDS]             ps, redrawn every SECONDS (default 2) until Enter or Ctrl-C',
  'kill [NODE/]BLUEPRINT/WORKLOAD  stop a workload and start it again (NODE when ps shows it on several)',
  'pipe                      every pipe of yours and how far behind its consumer is',
  'logs BLUEPRINT/WORKLOAD   the output of a workload of this node',
  'help                      this list',
  'exit                      leave the shell',
].join('\n') + '\n';

/** The process table as ps and top show it, one line per workload. */
function procTable(rows: ProcEntry[]): string {
  if (!rows.length) return 'no workloads\n';
  const table = new Table({ head: ['NODE', 'BLUEPRINT', 'WORKLOAD', 'KIND', 'STATE', 'RESTARTS', 'SINCE'], style: { head: [], border: [] } });
  for (const r of rows.sort((a, b) => `${a.node}/${a.blueprint}/${a.workload}`.localeCompare(`${b.node}/${b.blueprint}/${b.workload}`))) {
    table.push([r.node, r.blueprint, r.workload, r.kind, r.state, r.restarts, age(r.since)]);
  }
  return `${table.toString()}\n`;
}

/** The pipes as `pipe` shows them. */
function pipeTable(rows: PipeLag[]): string {
  if (!rows.length) return 'no pipes\n';
  const table = new Table({ head: ['FROM', 'TO', 'LAG (MESSAGES)', 'LAG (BYTES)'], style: { head: [], border: [] } });
  for (const r of rows) table.push([r.from, r.to, r.lagMessages, r.lagBytes]);
  return `${table.toString()}\n`;
}

/** NODE/BLUEPRINT/WORKLOAD of `name` (which may leave NODE out when ps shows the workload on one node only). */
async function locate(name: string, ctx: ShellContext): Promise<{ node: string; blueprint: string; workload: string }> {
  const m = /^(?:([a-z0-9]{1,64})\/)?([a-z0-9-]{1,63})\/([a-z0-9-]{1,63})$/.exec(name);
  if (!m) throw usage('kill [NODE/]BLUEPRINT/WORKLOAD');
  const [, node, blueprint, workload] = m as unknown as [string, string | undefined, string, string];
  if (node) return { node, blueprint, workload };
  const nodes = (await ctx.client.gridProc(ctx.owner)).filter((r) => r.blueprint === blueprint && r.workload === workload).map((r) => r.node);
  if (nodes.length === 1) return { node: nodes[0]!, blueprint, workload };
  throw new CliFailure(nodes.length ? `kill: ${name} runs on ${nodes.sort().join(', ')}: say which, as NODE/${name}` : `kill: ${name}: no such workload of yours (ps lists them)`);
}

/** The words of a line: whitespace separates them, except inside '...' or "...". */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

const usage = (text: string) => new CliFailure(`usage: ${text}`);

/** Runs one line; resolves to 'exit' when the shell should end. Failures reject as CliFailure (or ApiError). */
export async function runLine(line: string, ctx: ShellContext): Promise<'exit' | void> {
  const [command, ...args] = splitWords(line);
  const { client, owner, out } = ctx;
  switch (command) {
    case undefined:
      return;
    case 'exit':
    case 'quit':
      return 'exit';
    case 'help':
      out.write(HELP);
      return;
    case 'ls': {
      if (args.length > 1) throw usage('ls [PATH]');
      const path = args[0] ?? '/';
      const got = await client.gridRead(owner, path);
      if ('file' in got) {
        await got.file.cancel();
        out.write(`${path}\n`);
        return;
      }
      for (const e of got.dir) out.write(`${e.type === 'dir' ? 'd' : '-'} ${String(e.size).padStart(10)} ${e.mtime.slice(0, 19).replace('T', ' ')} ${e.name}${e.type === 'dir' ? '/' : ''}\n`);
      return;
    }
    case 'cat': {
      if (args.length !== 1) throw usage('cat PATH');
      const got = await client.gridRead(owner, args[0]!);
      if ('dir' in got) throw new CliFailure(`cat: ${args[0]}: is a directory`);
      let last = 10;
      for await (const chunk of got.file) {
        if (chunk.length) last = chunk[chunk.length - 1]!;
        out.write(chunk);
      }
      // Keep the prompt on its own line after a file without a final newline.
      if (last !== 10) out.write('\n');
      return;
    }
    case 'put': {
      if (args.length !== 2) throw usage('put LOCALFILE PATH');
      const [local, remote] = args as [string, string];
      let bytes: Buffer;
      try {
        bytes = await readFile(local);
      } catch (err) {
        throw new CliFailure(`put: ${local}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const target = remote.endsWith('/') ? remote + basename(local) : remote;
      await client.gridWrite(owner, target, bytes);
      out.write(`${target}: ${bytes.length} bytes\n`);
      return;
    }
    case 'mkdir': {
      if (args.length !== 1) throw usage('mkdir PATH');
      await client.gridMkdir(owner, args[0]!);
      return;
    }
    case 'rm': {
      if (args.length !== 1) throw usage('rm PATH');
      await client.gridRemove(owner, args[0]!);
      return;
    }
    case 'ps': {
      if (args.length) throw usage('ps');
      out.write(procTable(await client.gridProc(owner)));
      return;
    }
    case 'top': {
      const seconds = args[0] === undefined ? 2 : Number(args[0]);
      if (args.length > 1 || !(seconds >= 0.1 && seconds <= 3600)) throw usage('top [SECONDS] (0.1 to 3600)');
      const signal = ctx.signal ?? new AbortController().signal;
      while (!signal.aborted) {
        const rows = await client.gridProc(owner);
        if (signal.aborted) break;
        // Home and clear: each round replaces the last on the screen.
        out.write(`\x1b[H\x1b[2J${new Date().toISOString().slice(11, 19)}  every ${seconds}s; Enter or Ctrl-C ends\n${procTable(rows)}`);
        // The refresh period of the display, ended early when the user stops it.
        await delay(seconds * 1000, undefined, { signal }).catch(() => undefined);
      }
      return;
    }
    case 'kill': {
      if (args.length !== 1) throw usage('kill [NODE/]BLUEPRINT/WORKLOAD');
      const { node, blueprint, workload } = await locate(args[0]!, ctx);
      await client.gridRestart(owner, node, blueprint, workload);
      out.write(`restarting ${node}/${blueprint}/${workload}\n`);
      return;
    }
    case 'pipe': {
      if (args.length) throw usage('pipe');
      out.write(pipeTable(await client.gridPipes(owner)));
      return;
    }
    case 'logs': {
      const m = args.length === 1 ? /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(args[0]!) : null;
      if (!m) throw usage('logs BLUEPRINT/WORKLOAD');
      const stream = await client.logs(m[1]!, m[2]!, { follow: false, owner: owner.publicKey });
      for await (const chunk of stream) out.write(chunk);
      return;
    }
    default:
      throw new CliFailure(`${command}: no such command (help lists them)`);
  }
}
