// A container sees the /zone mount bind-mounted at /zone: the real dockerd and kernel,
// with the Docker driver's confinement (no capabilities, no new privileges).
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pino from 'pino';
import { mountZone } from '../../../../appliance/pseudokernel/mount/mount.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { MemoryGridFs, MemoryProcTable } from '../memory-grid.ts';

const run = promisify(execFile);
const docker = new Docker();
const name = `zone-fuse-test-${process.pid}`;
const base = await mkdtemp(join(tmpdir(), 'zone-fuse-docker-'));
const mnt = join(base, 'zone');
const grid = new MemoryGridFs();
const self = { name: 'web', blueprint: 'shop', node: 'n1', owner: 'ed25519:T3duZXI=', ip: null };
const MAX_OPEN_FILES = 32;
const MAX_SCRATCH = 8 * 2 ** 20;
const mount = await mountZone({
  mountpoint: mnt, grid, proc: new MemoryProcTable([]), self, logger: pino({ level: 'silent' }), scratchParent: base,
  maxOpenFiles: MAX_OPEN_FILES, maxScratchBytes: MAX_SCRATCH,
});
t.teardown(async () => {
  await docker.getContainer(name).remove({ force: true }).catch(() => {});
  await mount.unmount();
  await rm(base, { recursive: true, force: true });
});

t.test('a container writes /zone/fs/x and reads /zone/self/name', async (t) => {
  const container = await docker.createContainer({
    name,
    Image: 'zone/busybox:latest',
    Cmd: ['sh', '-ec', 'echo from-container > /zone/fs/x; cat /zone/self/name > /zone/fs/seen; ls /zone > /zone/fs/root'],
    Labels: { 'zone-test': name },
    HostConfig: { Binds: [`${mnt}:/zone`], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  await container.start();
  const state = await waitFor(async () => {
    const { State } = await container.inspect();
    return State.Status === 'exited' ? State : null;
  }, { timeoutMs: 20_000, what: `container ${name} to exit` });
  t.equal(state.ExitCode, 0);
  t.equal(grid.content('/x')?.toString(), 'from-container\n', 'published to GridFs when the container closed it');
  t.equal(grid.content('/seen')?.toString(), 'web\n');
  t.equal(grid.content('/root')?.toString(), 'fs\nproc\nself\n');
  t.equal((await run('busybox', ['cat', `${mnt}/fs/x`])).stdout, 'from-container\n', 'the host sees it through the mount');
  await container.remove({ force: true });
});

t.test('a hostile container cannot exhaust the mount: open files stop at ENFILE, unclosed writes at ENOSPC, and /zone still answers', async (t) => {
  const hostile = `${name}-hostile`;
  t.teardown(() => docker.getContainer(hostile).remove({ force: true }).catch(() => {}));
  // Holds every descriptor it can get on one file (in a subshell, which lets them go), then
  // writes a file larger than the scratch bound without closing it.
  const fds = Array.from({ length: MAX_OPEN_FILES }, (_, i) => `exec ${i + 10}</zone/fs/x || echo open-refused-at-${i}`).join('; ');
  const script = `(${fds}; cat /zone/fs/x >/dev/null 2>/zone-err || echo "next: $(cat /zone-err)"); exec 3>/zone/fs/big; dd if=/dev/zero bs=1M count=32 >&3 2>/dd-err || { echo dd failed; cat /dd-err; }`;
  const container = await docker.createContainer({
    name: hostile,
    Image: 'zone/busybox:latest',
    Cmd: ['sh', '-c', script],
    Labels: { 'zone-test': name },
    HostConfig: { Binds: [`${mnt}:/zone`], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  await container.start();
  await waitFor(async () => (await container.inspect()).State.Status === 'exited', { timeoutMs: 30_000, what: `container ${hostile} to exit` });
  const logs = (await container.logs({ stdout: true, stderr: true })).toString();
  t.match(logs, /next: .*Too many open files in system/, 'one open past the bound is ENFILE');
  t.match(logs, /dd failed[\s\S]*No space left on device/, 'an unclosed write past the scratch bound is ENOSPC');
  t.equal((await run('busybox', ['cat', `${mnt}/fs/x`])).stdout, 'from-container\n', 'the mount still serves once the container is gone');
  t.ok((grid.content('/big')?.length ?? 0) <= MAX_SCRATCH, 'no more than the bound was published');
});
