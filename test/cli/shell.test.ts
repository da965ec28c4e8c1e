// `zone shell` as a user types into it: the real command in a pseudo-terminal
// (util-linux `script`), against a real appliance with its pseudokernel.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { splitWords } from '../../cli/shell/commands.ts';
import { box, startNode } from '../api/node.ts';
import { ZONE } from '../helpers/zone-cli.ts';
import { waitFor } from '../helpers/wait.ts';

t.test('splitWords keeps quoted words whole', async (t) => {
  t.same(splitWords('  put "my file.txt"  /a  '), ['put', 'my file.txt', '/a']);
  t.same(splitWords("cat 'x y'"), ['cat', 'x y']);
  t.same(splitWords(''), []);
});

/** A program in a pseudo-terminal: what it printed so far, and a way to wait for more. */
function inTerminal(command: string, env: Record<string, string>) {
  const child = spawn('script', ['-qfc', command, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let seen = 0;
  return {
    /** What it printed after what was awaited last. */
    rest: () => output.slice(seen),
    type: (keys: string) => child.stdin.write(keys),
    /** Waits for `pattern` after what was awaited last; returns the text up to and including it. */
    async expect(pattern: RegExp | string, timeoutMs = 20_000): Promise<string> {
      const found = await waitFor(() => {
        const rest = output.slice(seen);
        const at = typeof pattern === 'string' ? rest.indexOf(pattern) : rest.search(pattern);
        return at >= 0 && { at, length: typeof pattern === 'string' ? pattern.length : rest.match(pattern)![0].length };
      }, { timeoutMs, what: `${String(pattern)} in the shell's output; it printed: ${JSON.stringify(output.slice(seen))}` });
      const text = output.slice(seen, seen + found.at + found.length);
      seen += found.at + found.length;
      return text;
    },
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

t.test('zone shell: put a file, ls and cat it, ps shows the blueprint\'s workloads, kill, pipe, logs, mkdir, up-arrow repeats a line, rm, Ctrl-C, top, exit', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  const dir = mkdtempSync(join(tmpdir(), 'zone-shell-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'owner.json');
  writeSigningKey(keyFile, n.operator);
  const local = join(dir, 'hello.txt');
  const content = `hello from the shell ${process.pid}\nsecond line\n`;
  writeFileSync(local, content);
  const history = join(dir, 'history');

  t.equal((await n.appliance.submit(n.sign({ name: 'shop', version: 1, workloads: [box('web'), box('db')] }))).version, 1);
  await waitFor(async () => (await n.appliance.gridProc(n.operator.publicKey)).filter((r) => r.state === 'running').length === 2, { timeoutMs: 60_000, what: 'web and db running in the process table' });

  const started = Date.now();
  const sh = inTerminal(`${ZONE} shell --node ${n.url} --key ${keyFile}`, { ZONE_SHELL_HISTORY: history });
  t.teardown(async () => {
    sh.kill();
    await sh.exited;
  });
  await sh.expect('zone> ');
  t.comment(`prompt after ${Date.now() - started} ms`);

  sh.type(`put ${local} /hello.txt\r`);
  t.match(await sh.expect('zone> '), `/hello.txt: ${Buffer.byteLength(content)} bytes`);
  sh.type('ls\r');
  t.match(await sh.expect('zone> '), new RegExp(`- +${Buffer.byteLength(content)} \\d{4}-\\d\\d-\\d\\d [0-9:]{8} hello\\.txt`));
  sh.type('cat /hello.txt\r');
  t.match((await sh.expect('zone> ')).replace(/\r\n/g, '\n'), content);

  sh.type('ps\r');
  const ps = await sh.expect('zone> ');
  t.match(ps, /NODE\s.*BLUEPRINT\s.*WORKLOAD\s.*KIND\s.*STATE\s.*RESTARTS\s.*SINCE/);
  for (const w of ['web', 'db']) t.match(ps, new RegExp(`${n.appliance.identity.id}\\s.*shop\\s.*${w}\\s.*container\\s.*running\\s.*0\\s`), `ps lists ${w}`);

  // Line editing: the up arrow brings back `ps` (readline redraws the line), and Enter runs it again.
  sh.type('\x1b[A');
  await sh.expect('zone> ps');
  sh.type('\r');
  t.match(await sh.expect('zone> '), /shop\s.*web/);

  // kill restarts a workload of the owner's (NODE/ may be left out when ps shows it once).
  sh.type('kill shop/web\r');
  t.match(await sh.expect('zone> '), `restarting ${n.appliance.identity.id}/shop/web`);
  await waitFor(async () => (await n.appliance.gridProc(n.operator.publicKey)).some((r) => r.workload === 'web' && r.restarts === 1 && r.state === 'running'), { timeoutMs: 30_000, what: 'web restarted once' });
  sh.type('ps\r');
  t.match(await sh.expect('zone> '), new RegExp(`shop\\s.*web\\s.*container\\s.*running\\s.*1\\s`), 'ps shows the restart');
  sh.type('kill shop/nope\r');
  t.match(await sh.expect('zone> '), 'kill: shop/nope: no such workload of yours');
  sh.type('pipe\r');
  t.match(await sh.expect('zone> '), 'no pipes');

  sh.type('logs shop/web\r');
  t.match(await sh.expect('zone> '), 'web running', "logs prints the workload's output");
  sh.type('mkdir /d\r');
  await sh.expect('zone> ');
  sh.type(`put ${local} /d/\r`);
  t.match(await sh.expect('zone> '), '/d/hello.txt:', 'put into a directory keeps the name');
  sh.type('ls d\r');
  t.match(await sh.expect('zone> '), /hello\.txt/);

  sh.type('cat /nope\r');
  t.match(await sh.expect('zone> '), /refused \(404 NOT_FOUND\): \/params\/path: \/nope: no such file or directory/);
  sh.type('rm /hello.txt\r');
  await sh.expect('zone> ');
  sh.type('ls\r');
  t.notMatch(await sh.expect('zone> '), /hello\.txt/);

  // Ctrl-C drops a half-typed line; the shell goes on.
  sh.type('rm /d/hello');
  await sh.expect('rm /d/hello');
  sh.type('\x03');
  await sh.expect('^C');
  await sh.expect('zone> ');
  sh.type('ls /d\r');
  t.match(await sh.expect('zone> '), /hello\.txt/, 'the dropped rm did not run');

  // top redraws ps until Enter; the Enter is not a command of its own.
  sh.type('top 0.2\r');
  t.ok((await sh.expect(/every 0\.2s; Enter or Ctrl-C ends\r?\n[^]*shop[^]*web/)).includes('\x1b[H\x1b[2J'), 'each round clears the screen');
  await sh.expect(/every 0\.2s/);
  sh.type('\r');
  await sh.expect('zone> ');

  sh.type('exit\r');
  t.equal(await sh.exited, 0, 'exit ends the shell with status 0');
  t.notMatch(sh.rest(), /zone> /, 'the Enter that ended top was no command: no second prompt');
  t.comment(`whole session ${Date.now() - started} ms`);
  t.same(readFileSync(history, 'utf8').split('\n').filter(Boolean), [`put ${local} /hello.txt`, 'ls', 'cat /hello.txt', 'ps', 'ps', 'kill shop/web', 'ps', 'kill shop/nope', 'pipe', 'logs shop/web', 'mkdir /d', `put ${local} /d/`, 'ls d', 'cat /nope', 'rm /hello.txt', 'ls', 'ls /d', 'top 0.2', 'exit'], 'the history file keeps the lines');
});

t.test('zone shell ends at end of input (Ctrl-D) with status 0', async (t) => {
  const n = await startNode(t, {}, { pseudokernel: true });
  const dir = mkdtempSync(join(tmpdir(), 'zone-shell-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'owner.json');
  writeSigningKey(keyFile, n.operator);
  const sh = inTerminal(`${ZONE} shell --node ${n.url} --key ${keyFile}`, { ZONE_SHELL_HISTORY: join(dir, 'history') });
  t.teardown(async () => {
    sh.kill();
    await sh.exited;
  });
  await sh.expect('zone> ');
  sh.type('\x04');
  t.equal(await sh.exited, 0);
});

t.test('zone shell on a node that protects reads: owner calls and (with $ZONE_READ_KEY) log reads each carry a fresh token for this node', async (t) => {
  const reader = generateSigningKeyPair();
  const n = await startNode(t, { readToken: { keys: [reader.publicKey] } }, { pseudokernel: true });
  const dir = mkdtempSync(join(tmpdir(), 'zone-shell-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'owner.json');
  const readerFile = join(dir, 'reader.json');
  writeSigningKey(keyFile, n.operator);
  writeSigningKey(readerFile, reader);
  t.equal((await n.appliance.submit(n.sign({ name: 'shop', version: 1, workloads: [box('web')] }))).version, 1);
  await waitFor(async () => (await n.appliance.gridProc(n.operator.publicKey)).some((r) => r.state === 'running'), { timeoutMs: 60_000, what: 'web running in the process table' });
  const sh = inTerminal(`${ZONE} shell --node ${n.url} --key ${keyFile}`, { ZONE_SHELL_HISTORY: join(dir, 'history'), ZONE_READ_KEY: readerFile });
  t.teardown(async () => {
    sh.kill();
    await sh.exited;
  });
  await sh.expect('zone> ');
  for (let i = 0; i < 2; i++) {
    sh.type('ps\r');
    t.match(await sh.expect('zone> '), /shop\s.*web\s.*running/, `ps, time ${i + 1}`);
    sh.type('logs shop/web\r');
    t.match(await sh.expect('zone> '), 'web running', `logs with a read token, time ${i + 1}`);
  }
  sh.type('exit\r');
  t.equal(await sh.exited, 0);
});
