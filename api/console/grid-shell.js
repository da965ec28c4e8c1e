// `zone shell` in the browser: the same commands over the same owner routes (ls, cat,
// mkdir, rm on /zone/fs; ps, kill, pipe, logs), a line editor on xterm.js. Files come
// from the computer through the Files page's upload instead of `put`.
import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';

const HELP = [
  'ls [PATH]                 list a directory of your /zone/fs (default /)',
  'cat PATH                  print a file of your /zone/fs',
  'mkdir PATH                make a directory (its parent must exist)',
  'rm PATH                   remove a file or an empty directory',
  'ps                        every workload of yours on every node',
  'kill [NODE/]BLUEPRINT/WORKLOAD  stop a workload and start it again',
  'pipe                      every pipe of yours and how far behind its consumer is',
  'logs BLUEPRINT/WORKLOAD   the output of a workload of this node',
  'clear                     clear the screen',
  'help                      this list',
];
const PROMPT = '\x1b[1mzone$\x1b[0m ';

/** The words of a line: whitespace separates them, except inside '...' or "...". */
export function splitWords(line) {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

const fsUrl = (path) => `/v1/grid/fs/${path.split('/').filter(Boolean).map(encodeURIComponent).join('/')}`;

/** Rows as aligned columns. */
function columns(head, rows) {
  const all = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

async function run(line, client, print) {
  const [command, ...args] = splitWords(line);
  const usage = (text) => new Error(`usage: ${text}`);
  switch (command) {
    case undefined:
      return;
    case 'help':
      return print(HELP.join('\n'));
    case 'clear':
      return print('\x1bc', false);
    case 'ls': {
      if (args.length > 1) throw usage('ls [PATH]');
      const res = await client.fetch(fsUrl(args[0] ?? '/'));
      if (!(res.headers.get('content-type') ?? '').startsWith('application/json')) return print(args[0]);
      const { entries } = await res.json();
      return print(entries.map((e) => `${e.type === 'dir' ? 'd' : '-'} ${String(e.size).padStart(10)} ${e.mtime.slice(0, 19).replace('T', ' ')} ${e.name}${e.type === 'dir' ? '/' : ''}`).join('\n'));
    }
    case 'cat': {
      if (args.length !== 1) throw usage('cat PATH');
      const res = await client.fetch(fsUrl(args[0]));
      if ((res.headers.get('content-type') ?? '').startsWith('application/json')) throw new Error(`cat: ${args[0]}: is a directory`);
      return print(await res.text());
    }
    case 'mkdir':
    case 'rm': {
      if (args.length !== 1) throw usage(`${command} PATH`);
      await client.fetch(fsUrl(args[0]), { method: command === 'mkdir' ? 'POST' : 'DELETE' });
      return;
    }
    case 'ps': {
      const { workloads } = await client.json('/v1/grid/proc');
      if (!workloads.length) return print('no workloads');
      return print(columns(['NODE', 'BLUEPRINT', 'WORKLOAD', 'KIND', 'STATE', 'RESTARTS', 'SINCE'], workloads.map((r) => [r.node, r.blueprint, r.workload, r.kind, r.state, r.restarts, r.since.slice(0, 19).replace('T', ' ')])));
    }
    case 'kill': {
      const m = args.length === 1 ? /^(?:([a-z0-9]{1,64})\/)?([a-z0-9-]{1,63})\/([a-z0-9-]{1,63})$/.exec(args[0]) : null;
      if (!m) throw usage('kill [NODE/]BLUEPRINT/WORKLOAD');
      let [, node, blueprint, workload] = m;
      if (!node) {
        const nodes = (await client.json('/v1/grid/proc')).workloads.filter((r) => r.blueprint === blueprint && r.workload === workload).map((r) => r.node);
        if (nodes.length !== 1) throw new Error(nodes.length ? `kill: ${args[0]} runs on ${nodes.sort().join(', ')}: say which, as NODE/${args[0]}` : `kill: ${args[0]}: no such workload of yours (ps lists them)`);
        node = nodes[0];
      }
      // The token is made for the node that runs it, which checks it too.
      await client.fetch(`/v1/grid/proc/${node}/${blueprint}/${workload}/restart`, { method: 'POST', aud: node });
      return print(`restarting ${node}/${blueprint}/${workload}`);
    }
    case 'pipe': {
      const { pipes } = await client.json('/v1/grid/pipes');
      return print(pipes.length ? columns(['FROM', 'TO', 'LAG (MESSAGES)', 'LAG (BYTES)'], pipes.map((p) => [p.from, p.to, p.lagMessages, p.lagBytes])) : 'no pipes');
    }
    case 'logs': {
      const m = args.length === 1 ? /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(args[0]) : null;
      if (!m) throw usage('logs BLUEPRINT/WORKLOAD');
      return print(await (await client.fetch(`/v1/grid/logs/${m[1]}/${m[2]}?tail=200`)).text());
    }
    default:
      throw new Error(`${command}: no such command (help lists them)`);
  }
}

/** Opens the grid shell in `container`; returns the close function. */
export function openGridShell(client, container) {
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  fit.fit();
  window.zoneTerminal = term;
  // What a file or a log holds is text for the terminal: lines end in \r\n here.
  const print = (text, newline = true) => term.write(newline ? `${text.replace(/\r?\n/g, '\r\n')}${text.endsWith('\n') || !text ? '' : '\r\n'}` : text);
  let line = '';
  let busy = false;
  term.write(`The grid as ${client.key.publicKey.slice(0, 20)}…; help lists the commands.\r\n${PROMPT}`);
  const input = term.onData(async (data) => {
    if (busy) return;
    for (const c of data) {
      if (c === '\r') {
        term.write('\r\n');
        busy = true;
        try {
          await run(line.trim(), client, print);
        } catch (err) {
          print(`\x1b[31m${err.message}\x1b[0m`);
        }
        busy = false;
        line = '';
        term.write(PROMPT);
      } else if (c === '\x7f') {
        if (line) {
          line = line.slice(0, -1);
          term.write('\b \b');
        }
      } else if (c === '\x03') {
        line = '';
        term.write(`^C\r\n${PROMPT}`);
      } else if (c >= ' ') {
        line += c;
        term.write(c);
      }
    }
  });
  const onWindow = () => fit.fit();
  window.addEventListener('resize', onWindow);
  term.focus();
  return () => {
    window.removeEventListener('resize', onWindow);
    input.dispose();
    term.dispose();
    if (window.zoneTerminal === term) window.zoneTerminal = undefined;
  };
}
