// DockerDriver.exec and usage against the real dockerd: a shell with a TTY, the one the
// image has (busybox: /bin/sh, no /bin/bash), that follows resizes and ends with the
// container; CPU time and memory of a running container, null for a stopped one.
import { once } from 'node:events';
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import type { TerminalSession, WorkloadSpec } from '../../../drivers/contract.ts';
import { workloadId } from '../../../drivers/names.ts';
import { shellOf } from '../../../drivers/docker/terminal.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `tt${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
const { docker, driver } = testDockerDriver(NODE);

function specOf(workload: string, command: string[]): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: 'zone/busybox', command, restart: 'never' } as ContainerWorkload);
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload, id: workloadId(NODE, OWNER, 'bp', workload), specHash: specHash(definition), definition };
}

/** Everything the terminal printed so far. */
function screenOf(session: TerminalSession): () => string {
  let text = '';
  session.output.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
  return () => text;
}

t.test('exec opens the image\'s own shell with a TTY; it answers, follows a resize, and ends with the container', async (t) => {
  const spec = specOf('shell', ['sleep', '3600']);
  await driver.ensure(spec);
  t.equal(await shellOf('/var/run/docker.sock', spec.id), '/bin/sh', 'busybox has no /bin/bash: /bin/sh');
  const session = await driver.exec(spec.id, { cols: 100, rows: 30 });
  const screen = screenOf(session);
  session.input.write('echo $((6*7)); stty size\n');
  await waitFor(() => /\r\n42\r\n/.test(screen()) && screen().includes('30 100'), { timeoutMs: 20_000, what: '42 and the size 30 100' });
  await session.resize(120, 40);
  session.input.write('stty size\n');
  await waitFor(() => screen().includes('40 120'), { timeoutMs: 20_000, what: 'the new size 40 120' });
  const ended = once(session.output, 'end', { signal: AbortSignal.timeout(20_000) });
  await docker.getContainer(spec.id).kill();
  await ended;
  session.input.destroy();
  t.pass('the session ended with the container');
});

t.test('usage: CPU time and memory while it runs, null once stopped or gone', async (t) => {
  const spec = specOf('busy', ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 3600']);
  await driver.ensure(spec);
  const usage = await waitFor(async () => {
    const u = await driver.usage(spec.id);
    return u && u.cpuSeconds > 0.05 ? u : null;
  }, { timeoutMs: 30_000, what: 'some CPU time used' });
  t.ok(usage.memoryBytes > 0 && usage.memoryBytes < 64 * 2 ** 20, `memory ${usage.memoryBytes} bytes`);
  await driver.stop(spec.id, 1000);
  t.equal(await driver.usage(spec.id), null, 'stopped: null');
  t.equal(await driver.usage('no-such-container'), null, 'gone: null');
});
