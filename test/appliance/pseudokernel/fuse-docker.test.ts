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
import { mountZone } from '../../../appliance/pseudokernel/fuse-mount.ts';
import { waitFor } from '../../helpers/wait.ts';
import { MemoryGridFs, MemoryProcTable } from './memory-grid.ts';

const run = promisify(execFile);
const docker = new Docker();
const name = `zone-fuse-test-${process.pid}`;
const base = await mkdtemp(join(tmpdir(), 'zone-fuse-docker-'));
const mnt = join(base, 'zone');
const grid = new MemoryGridFs();
const self = { name: 'web', blueprint: 'shop', node: 'n1', owner: 'ed25519:T3duZXI=', ip: null };
const mount = await mountZone({ mountpoint: mnt, grid, proc: new MemoryProcTable([]), self, logger: pino({ level: 'silent' }), scratchParent: base });
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
