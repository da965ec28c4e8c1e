// The /zone mount through the real kernel, on an in-memory GridFs and ProcTable. This
// process serves the mount on its main thread, so it never touches the mount itself:
// every access is a busybox child process.
import t, { type Test } from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { ProcEntry } from '../../../../appliance/pseudokernel/interfaces.ts';
import { isMounted, mountZone } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { createLogger } from '../../../../appliance/logger.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { MemoryGridFs, MemoryProcTable } from '../memory-grid.ts';

const run = promisify(execFile);
const SELF = { name: 'web', blueprint: 'shop', node: 'n1', owner: 'ed25519:T3duZXI=', ip: '10.88.1.10' };
const since = '2025-01-02T03:04:05.000Z';
const row = (node: string, blueprint: string, workload: string, state: string, restarts = 0): ProcEntry => ({ node, blueprint, workload, kind: 'container', state, restarts, since });

const base = await mkdtemp(join(tmpdir(), 'zone-fuse-test-'));
const mnt = join(base, 'zone');
const grid = new MemoryGridFs();
const dbVolumes = [{ name: 'data', kind: 'filesystem', sizeBytes: 67108864, usedBytes: 15360, target: '/var/lib/db', readOnly: false }];
const proc = new MemoryProcTable([row('n1', 'shop', 'web', 'running', 2), { ...row('n2', 'shop', 'db', 'crashloop', 7), volumes: dbVolumes }, row('n0', 'shop', 'web', 'exited'), row('n2', 'etl', 'job', 'running')]);
const logLines: string[] = [];
const logger = createLogger({ destination: { write: (line: string) => void logLines.push(line) } });
const MAX_OPEN_FILES = 24;
const MAX_SCRATCH = 96 * 2 ** 20;
const mount = await mountZone({ mountpoint: mnt, grid, proc, self: SELF, logger, scratchParent: base, maxOpenFiles: MAX_OPEN_FILES, maxScratchBytes: MAX_SCRATCH });
t.teardown(async () => {
  await mount.unmount();
  await rm(base, { recursive: true, force: true });
});

/** Runs a busybox shell script in a child process, in the mount; its stdout. */
async function sh(script: string): Promise<string> {
  const { stdout } = await run('busybox', ['sh', '-ec', `cd ${mnt}; ${script}`], { timeout: 30_000, maxBuffer: 1 << 20, env: { ...process.env, TZ: 'UTC' } });
  return stdout;
}

/** The error message of a script expected to fail. */
async function shFails(script: string): Promise<string> {
  const result = await sh(script).then(
    () => null,
    (err: { stderr?: string }) => err.stderr ?? String(err),
  );
  if (result === null) throw new Error(`expected to fail: ${script}`);
  return result;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A writer that keeps its file open until its stdin ends: dd opens once and writes what it reads. */
function openWriter(t: Test, path: string): ChildProcess {
  const writer = spawn('busybox', ['dd', `of=${mnt}/${path}`, 'bs=4096'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => void writer.kill('SIGKILL'));
  return writer;
}

/** Ends its stdin and waits for it to exit: its exit code, or the signal that ended it. */
async function exitOf(child: ChildProcess): Promise<number | string | null> {
  child.stdin?.end();
  await waitFor(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 10_000, what: `${child.spawnargs.join(' ')} to exit` });
  return child.exitCode ?? child.signalCode;
}

function sizeOf(path: string): Promise<string> {
  return sh(`stat -c %s ${path}`).then((out) => out.trim());
}

t.test('the root shows fs, proc and self; only fs/ can change', async (t) => {
  t.equal(await sh('ls -a'), '.\n..\nfs\nproc\nself\n');
  t.equal(await sh('stat -c "%A %n" . fs proc self'), 'dr-xr-xr-x .\ndrwxr-xr-x fs\ndr-xr-xr-x proc\ndr-xr-xr-x self\n');
  t.match(await shFails('mkdir pipes'), /Read-only file system/);
  t.match(await shFails('touch x'), /Read-only file system/);
  t.match(await shFails('rmdir proc'), /Read-only file system/);
  t.match(await shFails('mv self proc/self'), /Read-only file system/);
  t.match(await shFails('cat nothing'), /No such file or directory/);
  t.match(await shFails('ls pipes'), /No such file or directory/);
});

t.test('self/ tells the workload who it is', async (t) => {
  t.equal(await sh('ls self'), 'blueprint\nip\nname\nnode\nowner\n');
  t.equal(await sh('cat self/name self/blueprint self/node self/owner self/ip'), 'web\nshop\nn1\ned25519:T3duZXI=\n10.88.1.10\n');
  t.equal(await sh('stat -c "%A %s" self/name'), '-r--r--r-- 4\n');
  t.match(await shFails('echo x > self/name'), /Read-only file system/);
  t.match(await shFails('echo x >> self/name'), /Read-only file system/);
  t.match(await shFails('rm self/name'), /Read-only file system/);
  t.match(await shFails('touch self/name'), /Read-only file system/);
  t.match(await shFails('mv fs self/x'), /Read-only file system/);
  // access(2) through the thread pool, which never blocks this process's main thread. The
  // kernel answers it from the modes (default_permissions): root may write by them, and
  // the write itself is refused as above.
  await access(join(mnt, 'self/name'), constants.R_OK);
  await access(join(mnt, 'fs'), constants.W_OK);
});

t.test('proc/ shows every workload of the owner by blueprint, with its state', async (t) => {
  t.equal(await sh('ls proc'), 'etl\nshop\n');
  t.equal(await sh('ls proc/shop'), 'db\nweb\n');
  t.equal(await sh('ls proc/shop/web'), 'kind\nnode\nrestarts\nsince\nstate\nvolumes\n');
  t.equal(await sh('cat proc/shop/web/volumes'), '', 'no volumes');
  t.equal(await sh('cat proc/shop/db/volumes'), 'data filesystem 67108864 15360 /var/lib/db rw\n');
  t.equal(await sh('cd proc/shop/web; cat state node restarts kind since'), `running\nn1\n2\ncontainer\n${since}\n`, 'the row of this node, not n0\'s');
  t.equal(await sh('cat proc/shop/db/state proc/shop/db/restarts'), 'crashloop\n7\n');
  t.equal(await sh('stat -c %y proc/shop/db/state'), '2025-01-02 03:04:05.000000000 +0000\n');
  t.match(await shFails('echo stopped > proc/shop/web/state'), /Read-only file system/);
  t.match(await shFails('mkdir proc/new'), /Read-only file system/);
  t.match(await shFails('cat proc/shop/nope/state'), /No such file or directory/);
});

t.test('proc/ asks the ProcTable at most once a second, and shows changes after that', async (t) => {
  const lists = proc.lists;
  const started = Date.now();
  // Reads the whole tree over and over for one to two seconds.
  await sh('end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do ls -lR proc > /dev/null; cat proc/*/*/state > /dev/null; done');
  const count = proc.lists - lists;
  t.ok(count >= 1 && count <= Math.floor((Date.now() - started) / 1000) + 1, `${count} lists in ${Date.now() - started} ms`);
  proc.entries = [row('n1', 'shop', 'web', 'exited', 3)];
  await waitFor(async () => (await sh('cat proc/shop/web/state')) === 'exited\n', { timeoutMs: 5000, what: 'the new state in proc/' });
  t.equal(await sh('ls proc'), 'shop\n');
  t.equal(await sh('cat proc/shop/web/restarts'), '3\n');
});

t.test('fs/: create, read, write, append, overwrite', async (t) => {
  await sh('echo hello > fs/a');
  t.equal(grid.content('/a')?.toString(), 'hello\n');
  t.equal(await sh('cat fs/a'), 'hello\n');
  await sh('echo more >> fs/a; cat fs/a >> fs/a2');
  t.equal(await sh('cat fs/a'), 'hello\nmore\n');
  t.equal(await sh('cat fs/a2'), 'hello\nmore\n');
  await sh('echo short > fs/a');
  t.equal(grid.content('/a')?.toString(), 'short\n', 'O_TRUNC drops the old content');
  await sh('printf XY | dd of=fs/a bs=1 seek=1 conv=notrunc 2>/dev/null');
  t.equal(await sh('cat fs/a'), 'sXYrt\n', 'a write in the middle keeps the rest');
  t.equal(grid.nodes.get('/a')?.mode, 0o644);
});

t.test('fs/: 0 B, 1 B, 1 MiB and 64 MiB files come back byte-exact', async (t) => {
  await mkdir(join(base, 'src'));
  for (const [name, size] of [['zero', 0], ['one', 1], ['mib', 1 << 20], ['big', 64 << 20]] as const) {
    const data = randomBytes(size);
    await writeFile(join(base, 'src', name), data);
    // busybox cp for the small ones, dd with 1 MiB blocks for the big one.
    await sh(size > 1 << 20 ? `dd if=${base}/src/${name} of=fs/${name} bs=1M 2>/dev/null` : `cp ${base}/src/${name} fs/${name}`);
    t.equal(grid.content(`/${name}`)?.length, size, `${name}: all ${size} bytes published`);
    t.equal(sha256(grid.content(`/${name}`) ?? Buffer.alloc(1)), sha256(data), `${name}: published byte-exact`);
    t.equal(await sizeOf(`fs/${name}`), String(size), `${name}: stat says ${size}`);
    t.equal(await sh(`sha256sum < fs/${name}`), `${sha256(data)}  -\n`, `${name}: read back byte-exact`);
  }
  t.equal(await sh('cat fs/one | wc -c'), '1\n');
});

t.test('fs/: mkdir, readdir, stat, rename, unlink, rmdir', async (t) => {
  await sh('mkdir fs/d; mkdir fs/d/sub; echo 1 > fs/d/f; echo 22 > fs/d/g');
  t.equal(await sh('ls -a fs/d'), '.\n..\nf\ng\nsub\n');
  t.equal(await sh('cd fs/d; stat -c "%F %s %a %n" f g sub'), 'regular file 2 644 f\nregular file 3 644 g\ndirectory 0 755 sub\n');
  t.match(await sh('ls -l fs/d'), /-rw-r--r-- +1 root +root +2 .* f\n/);
  await sh('mv fs/d/f fs/d/h');
  t.equal(await sh('ls fs/d'), 'g\nh\nsub\n');
  await sh('mv fs/d/h fs/d/g');
  t.equal(await sh('cat fs/d/g'), '1\n', 'rename replaces a file');
  await sh('mv fs/d fs/e');
  t.equal(await sh('ls fs/e'), 'g\nsub\n', 'a directory moves with what it holds');
  t.match(await shFails('rmdir fs/e'), /Directory not empty/);
  t.match(await shFails('mv fs/e/g fs/missing/g'), /No such file or directory/);
  await sh('ln -s g fs/e/link');
  t.equal(await sh('readlink fs/e/link; cat fs/e/link'), 'g\n1\n', 'a symlink is read and followed by the kernel');
  t.equal(grid.nodes.get('/e/link')?.target, 'g');
  await sh('rm fs/e/link');
  await sh('rm fs/e/g; rmdir fs/e/sub fs/e');
  t.notOk(grid.nodes.has('/e'));
  t.match(await shFails('cat fs/e/g'), /No such file or directory/);
});

t.test('fs/: mkfifo makes a FIFO that a reader and a writer of this mount meet in; device nodes are refused', async (t) => {
  await sh('mkfifo -m 600 fs/p');
  t.equal(await sh('stat -c "%F %a" fs/p'), 'fifo 600\n');
  t.match(grid.nodes.get('/p'), { type: 'fifo', mode: 0o600 });
  t.equal(await sh('(echo through > fs/p &); cat fs/p'), 'through\n', 'the kernel joins them: no relay on one mount');
  t.match(await shFails('mknod fs/c c 1 3'), /Operation not permitted/);
  await sh('rm fs/p');
  t.notOk(grid.nodes.has('/p'));
});

t.test('a child process of the appliance does not inherit /dev/fuse: one working inside the mount would keep the mount\'s server alive and wait on itself', async (t) => {
  // (The glob's own descriptor is gone by the time it is read.)
  const held = await sh('for fd in /proc/$$/fd/*; do readlink "$fd" || true; done');
  // Node gives a child's stdio as pipes or as socket pairs, depending on the libuv build.
  t.match(held, /(pipe|socket):\[/, 'the child lists its descriptors (its stdout is a pipe or a socket)');
  t.notMatch(held, /\/dev\/fuse/, 'none of them is /dev/fuse (close-on-exec)');
});

t.test('fs/: truncate, chmod and touch', async (t) => {
  await sh('echo abcdef > fs/t; truncate -s 3 fs/t');
  t.equal(grid.content('/t')?.toString(), 'abc');
  await sh('truncate -s 0 fs/t');
  // Emptying through a descriptor, with nothing written, is published at the release (just after the close).
  await waitFor(() => grid.content('/t')?.length === 0, { timeoutMs: 5000, what: 'the emptied file to be published' });
  await sh('chmod 600 fs/t');
  t.equal(grid.nodes.get('/t')?.mode, 0o600);
  t.equal(await sh('stat -c %a fs/t'), '600\n');
  await sh('touch fs/t fs/new');
  t.equal(await sizeOf('fs/new'), '0');
  t.ok(grid.nodes.has('/new'), 'touch creates');
});

t.test('fs/: close-to-open: what a writer writes is seen once it closes the file', async (t) => {
  await grid.write('/c2o', Readable.from([Buffer.from('old\n')]));
  const writer = openWriter(t, 'fs/c2o');
  writer.stdin?.write('new content\n');
  await waitFor(async () => (await sizeOf('fs/c2o')) === '12', { timeoutMs: 10_000, what: 'the open file to show its local size' });
  t.equal(await sh('cat fs/c2o'), 'old\n', 'another open still reads the published content');
  t.equal(grid.content('/c2o')?.toString(), 'old\n', 'nothing is published before the close');
  t.equal(await exitOf(writer), 0);
  t.equal(await sh('cat fs/c2o'), 'new content\n', 'the close published it');
});

t.test('fs/: a file written in order from empty streams to GridFs while open and is published whole at close', async (t) => {
  const writer = openWriter(t, 'fs/streamed');
  writer.stdin?.write(Buffer.alloc(3 * 4096, 's'));
  await waitFor(() => grid.writing === 1, { timeoutMs: 10_000, what: 'the write-behind to stream' });
  t.equal(grid.content('/streamed')?.length, 0, 'nothing but the created empty file is published before the close');
  writer.stdin?.write('end');
  t.equal(await exitOf(writer), 0);
  t.equal(grid.content('/streamed')?.toString(), `${'s'.repeat(3 * 4096)}end`);
  t.equal(grid.writing, 0);
});

t.test('fs/: a write-behind whose stream fails is published from the local copy at close', async (t) => {
  await sh('echo old > fs/wb-fail');
  grid.failNext = { method: 'write', error: new Error('nats: connection closed') };
  await sh('seq 1 50000 > fs/wb-fail');
  t.equal(grid.failNext, null, 'the stream failed');
  t.equal(grid.content('/wb-fail')?.toString(), await sh('seq 1 50000'));
  t.equal(grid.writing, 0);
  await sh('rm fs/wb-fail');
});

/** Runs a node script in a child process (this process serves the mount): `fs` and `p(name)` (a path below the mount's fs/) are in scope. */
async function nodeScript(script: string): Promise<void> {
  await run(process.execPath, ['-e', `const fs = require('node:fs'); const p = (name) => ${JSON.stringify(`${mnt}/fs/`)} + name; ${script}`], { timeout: 30_000 });
}

t.test('fs/: a write out of order, a truncation, a rename or a chmod while open publishes the local copy instead, byte-exact', async (t) => {
  const mib = 2 ** 20;
  await nodeScript(`const fd = fs.openSync(p('seek'), 'w+'); fs.writeSync(fd, Buffer.alloc(${mib}, 'a'));
    const head = Buffer.alloc(4); fs.readSync(fd, head, 0, 4, 0); if (head.toString() !== 'aaaa') process.exit(3);
    fs.writeSync(fd, 'XYZ', 10); fs.writeSync(fd, 'tail', ${mib}); fs.closeSync(fd);`);
  const expected = Buffer.alloc(mib + 4, 'a');
  expected.write('XYZ', 10);
  expected.write('tail', mib);
  t.equal(sha256(grid.content('/seek') ?? Buffer.alloc(0)), sha256(expected), 'a seek back');
  await nodeScript(`const fd = fs.openSync(p('cut'), 'w'); fs.writeSync(fd, Buffer.alloc(${mib}, 'b')); fs.ftruncateSync(fd, 100); fs.writeSync(fd, 'end', 100); fs.closeSync(fd);`);
  t.equal(grid.content('/cut')?.toString(), `${'b'.repeat(100)}end`, 'a truncation');
  await nodeScript(`const fd = fs.openSync(p('ren-a'), 'w'); fs.writeSync(fd, 'abc'); fs.renameSync(p('ren-a'), p('ren-b')); fs.writeSync(fd, 'def'); fs.closeSync(fd);`);
  t.equal(grid.content('/ren-b')?.toString(), 'abcdef', 'a rename');
  t.notOk(grid.nodes.has('/ren-a'));
  await nodeScript(`const fd = fs.openSync(p('mode'), 'w'); fs.writeSync(fd, 'abc'); fs.fchmodSync(fd, 0o600); fs.writeSync(fd, 'def'); fs.closeSync(fd);`);
  t.equal(grid.content('/mode')?.toString(), 'abcdef', 'a chmod');
  t.equal(grid.nodes.get('/mode')?.mode, 0o600);
  // A small file created here is kept in memory until the write out of order.
  await nodeScript(`const fd = fs.openSync(p('small-seek'), 'w+'); fs.writeSync(fd, 'hello');
    if (fs.fstatSync(fd).size !== 5 || fs.statSync(p('small-seek')).size !== 5) process.exit(3);
    fs.writeSync(fd, 'J', 0); const all = Buffer.alloc(8); if (fs.readSync(fd, all, 0, 8, 0) !== 5) process.exit(4); fs.closeSync(fd);`);
  t.equal(grid.content('/small-seek')?.toString(), 'Jello', 'a seek back in a small file');
  t.equal(grid.writing, 0, 'no write-behind is left streaming');
  await sh('rm fs/seek fs/cut fs/ren-b fs/mode fs/small-seek');
});

t.test('fs/: a file removed while open for reading stays readable through its descriptor', async (t) => {
  await sh('echo keep > fs/r');
  t.equal(await sh('exec 3< fs/r; rm fs/r; ls -a fs | grep -c "^r$" || true; cat <&3'), '0\nkeep\n');
  t.notOk(grid.nodes.has('/r'));
  t.notOk((await sh('ls -a fs')).includes('.fuse_hidden'), 'libfuse\'s hidden name is not in GridFs');
});

t.test('fs/: a file removed while open for writing is not published again', async (t) => {
  const writer = openWriter(t, 'fs/gone');
  writer.stdin?.write('x');
  await waitFor(async () => (await sizeOf('fs/gone')) === '1', { timeoutMs: 10_000, what: 'the write to land' });
  await sh('rm fs/gone');
  t.equal(await exitOf(writer), 0);
  t.notOk(grid.nodes.has('/gone'));
  t.notOk((await sh('ls -a fs')).includes('.fuse_hidden'), 'no hidden leftover');
});

t.test('a GridFs failure without a POSIX code is an I/O error to the workload, and logged', async (t) => {
  await sh('echo hello > fs/fails');
  grid.failNext = { method: 'open', error: new Error('nats: connection closed') };
  t.match(await shFails('cat fs/fails'), /Input\/output error/);
  t.ok(logLines.some((line) => line.includes('nats: connection closed') && line.includes('/fs/fails')), 'the cause is in the log');
  t.equal(await sh('cat fs/fails'), 'hello\n', 'the next access works');
});

t.test('no local copy outlives the file it was for', async (t) => {
  const [scratch] = (await readdir(base)).filter((name) => name.startsWith('zone-fuse-'));
  t.ok(scratch, 'the mount has its scratch directory below scratchParent');
  // The kernel sends the release after close() has returned.
  await waitFor(async () => (await readdir(join(base, scratch ?? ''))).length === 0, { timeoutMs: 5000, what: 'the scratch directory to be empty' });
});

t.test('fs/: files open for reading are read by range from their version: no copy, each version let go at close', async (t) => {
  await sh('dd if=/dev/urandom of=fs/big.bin bs=1M count=8 2>/dev/null');
  const [scratch] = (await readdir(base)).filter((name) => name.startsWith('zone-fuse-'));
  // Eight readers hold the file open at once while its scratch directory stays empty.
  const readers = Array.from({ length: 8 }, () => spawn('busybox', ['sh', '-c', `exec 3<${mnt}/fs/big.bin; read x; cat <&3 | md5sum`], { stdio: ['pipe', 'pipe', 'ignore'] }));
  t.teardown(() => readers.forEach((r) => r.kill('SIGKILL')));
  await waitFor(() => grid.openVersions === 8, { timeoutMs: 10_000, what: 'eight versions open' });
  t.same(await readdir(join(base, scratch!)), [], 'no copy of the file in the scratch directory');
  const sums = await Promise.all(readers.map(async (r) => {
    r.stdin!.end('go\n');
    let out = '';
    for await (const chunk of r.stdout!) out += String(chunk);
    return out.split(' ')[0];
  }));
  const [expected] = (await sh('md5sum fs/big.bin')).split(' ');
  t.same(new Set(sums), new Set([expected]), 'every reader read the whole file');
  await waitFor(() => grid.openVersions === 0, { timeoutMs: 5000, what: 'every version let go' });
  await sh('rm fs/big.bin');
});

t.test(`a mount holds at most ${MAX_OPEN_FILES} open files: the next open is ENFILE, and works again once one closes`, async (t) => {
  await sh('echo x > fs/held.txt');
  // One shell holds the table full of descriptors on one file, then tries one more.
  const fds = Array.from({ length: MAX_OPEN_FILES }, (_, i) => `exec ${i + 10}<fs/held.txt`).join('; ');
  const refused = await shFails(`${fds}; cat fs/held.txt`);
  t.match(refused, /Too many open files in system/);
  t.equal(await sh('cat fs/held.txt'), 'x\n', 'the descriptors closed with the shell: opens work again');
  t.equal(await sh('ls fs/ | grep -c held.txt'), '1\n', 'the mount still serves');
});

t.test('files open for writing hold at most maxScratchBytes of local copies: past it ENOSPC, nothing published', async (t) => {
  const refused = await shFails('dd if=/dev/zero of=fs/huge.bin bs=1M count=100');
  t.match(refused, /No space left on device/);
  t.ok((grid.content('/huge.bin')?.length ?? 0) <= MAX_SCRATCH, 'no more than the bound was published');
  t.match(await shFails('truncate -s 200M fs/huge.bin'), /File too large/, 'a truncation past it is refused too (no file is larger than the quota)');
  await sh('rm fs/huge.bin; dd if=/dev/zero of=fs/fits.bin bs=1M count=8 2>/dev/null');
  t.equal(grid.content('/fits.bin')?.length, 8 * 2 ** 20, 'a file within the bound is written');
  await sh('rm fs/fits.bin');
});

t.test('unmount is lazy: a process holding a file open does not keep the mount; mounting twice is refused', async (t) => {
  const second = join(base, 'second');
  const other = await mountZone({ mountpoint: second, grid, proc, self: SELF, logger, scratchParent: base });
  t.teardown(() => other.unmount());
  await t.rejects(mountZone({ mountpoint: second, grid, proc, self: SELF, logger }), /cannot mount \/zone at .*second: Mountpoint in use/);
  const holder = spawn('busybox', ['sh', '-c', `exec 3< ${second}/self/name; echo ready; read x || true`], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => void holder.kill('SIGKILL'));
  let said = '';
  holder.stdout?.on('data', (chunk: Buffer) => (said += chunk.toString()));
  await waitFor(() => said === 'ready\n', { timeoutMs: 10_000, what: 'the holder to open its file' });
  await other.unmount();
  t.equal(await isMounted(second), false);
  await other.unmount();
  t.equal(await exitOf(holder), 0);
  t.equal((await readdir(base)).filter((name) => name.startsWith('zone-fuse-')).length, 1, 'its scratch directory is gone, the first mount\'s is there');
  t.equal(await isMounted(mnt), true, 'the first mount is not affected');
});
