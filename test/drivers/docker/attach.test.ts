// DockerDriver.attach for pipes, against the real dockerd: a piped stdout held from
// before the start, the log replay when it was not, stdin-only attaches and StdinOnce.
import t from 'tap';
import type { Readable } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import type { WorkloadSpec } from '../../../drivers/contract.ts';
import { workloadId } from '../../../drivers/names.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `at${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 4).toString('base64')}`;
const { docker, driver } = testDockerDriver(NODE);

function specOf(workload: string, command: string[], piped: { stdin?: 'pipe'; stdout?: 'pipe' } = {}): WorkloadSpec {
  const definition = { ...normalizeWorkload({ name: workload, kind: 'container', image: 'zone/busybox', command, restart: 'never' } as ContainerWorkload), ...piped };
  return { node: NODE, owner: OWNER, blueprint: 'bp', workload, id: workloadId(NODE, OWNER, 'bp', workload), specHash: specHash(definition), definition };
}

const logsOf = async (id: string) => text(await driver.logs(id, { follow: false }));
const exited = (id: string) => waitFor(async () => (await driver.inspect(id))?.state === 'exited', { timeoutMs: 20_000, what: `${id} exited` });

async function stdinOf(id: string, line: string): Promise<void> {
  const io = await driver.attach(id, { stdin: true, stdout: false });
  io.stdin.write(line);
  io.stdin.destroy();
}

t.test('a piped stdout is attached before the start: every byte of a fast writer, one incarnation at a time', async (t) => {
  const spec = specOf('fast', ['seq', '1', '200000'], { stdout: 'pipe' });
  const expected = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join(''));
  const first = await driver.ensure(spec);
  const io = await driver.attach(spec.id, { stdin: false, replay: true });
  t.equal(io.exact, true);
  t.equal(io.startedAt, first.startedAt);
  t.ok((await buffer(io.stdout)).equals(expected), 'byte-exact from the first byte');

  await exited(spec.id);
  const second = await driver.ensure(spec);
  const again = await driver.attach(spec.id, { stdin: false, replay: true });
  t.equal(again.startedAt, second.startedAt, 'the next incarnation');
  t.not(second.startedAt, first.startedAt);
  t.ok((await buffer(again.stdout)).equals(expected), 'only its own bytes');
  t.equal(again.stdin.writable, false, 'stdin was not attached');
});

t.test('without a held stdout, the replay is this incarnation\'s log, then the live stream', async (t) => {
  const spec = specOf('late', ['sh', '-c', 'echo "one $$"; read x; echo two']);
  for (const round of [1, 2]) {
    await driver.ensure(spec);
    await waitFor(async () => (await logsOf(spec.id)).split('one').length === round + 1, { timeoutMs: 20_000, what: `"one" logged by run ${round}` });
    const io = await driver.attach(spec.id, { stdin: false, replay: true });
    t.equal(io.exact, false, `run ${round}: from the log`);
    const out = text(io.stdout);
    await stdinOf(spec.id, 'go\n');
    t.match(await out, /^one \d+\ntwo\n$/, `run ${round}: its bytes only, the replayed and the live ones`);
    await exited(spec.id);
  }
  const io = await driver.attach(spec.id, { stdin: false, replay: true });
  const last = await text(io.stdout);
  t.match(last, /^one \d+\ntwo\n$/, 'an exited container gives its last incarnation\'s log', { logs: await logsOf(spec.id), inspect: await driver.inspect(spec.id) });
});

t.test('a piped stdin gets EOF when its feeder ends the attach (StdinOnce); the attach lasts until the container stops', async (t) => {
  const spec = specOf('counter', ['wc', '-c'], { stdin: 'pipe' });
  await driver.ensure(spec);
  t.equal((await docker.getContainer(spec.id).inspect()).Config.StdinOnce, true);
  const io = await driver.attach(spec.id, { stdin: true, stdout: false });
  const ended = text(io.stdout as Readable);
  io.stdin.write(Buffer.alloc(100_000, 'z'));
  io.stdin.end();
  t.equal(await ended, '', 'stdout not attached: nothing on it, and it ends when the container stops');
  t.match(await driver.inspect(spec.id), { state: 'exited', exitCode: 0 });
  t.equal((await logsOf(spec.id)).trim(), '100000');
});
