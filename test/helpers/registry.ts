// A private registry for one test file: Debian's docker-registry (distribution 2.8) on a
// free loopback port (dockerd takes plain http from loopback registries), with htpasswd
// auth and its own storage; stopped by PID and its folder removed when the file ends.
// Images are pushed to it through dockerd with the credentials in the request, so no
// `docker login` leaves them in a config file.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { commandLine, processRuns, stopProcess } from '../../lib/processes.ts';
import { freeLoopbackPorts } from './ports.ts';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

export interface TestRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  username: string;
  password: string;
  /** Tags `image` as HOST/`repo`:`tag`, pushes it, removes that tag again; the pushed manifest's digest. */
  push(image: string, repo: string, tag: string): Promise<string>;
}

/** A registry for the test file, stopped when it ends. */
export async function registryForFile(username: string, password: string): Promise<TestRegistry> {
  // tap only here: a benchmark that imports this file is no tap file.
  const { default: t } = await import('tap');
  const registry = await startRegistry(username, password);
  t.teardown(() => registry.stop());
  return registry;
}

/** A registry until stop() (benchmarks, which are no tap files). */
export async function startRegistry(username: string, password: string): Promise<TestRegistry & { stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'zone-registry-'));
  const [port] = (await freeLoopbackPorts(1)) as [number];
  const host = `127.0.0.1:${port}`;
  // -B: bcrypt, the one hash distribution's htpasswd takes.
  const { stdout } = await run('htpasswd', ['-Bbn', username, password]);
  await writeFile(join(dir, 'htpasswd'), stdout);
  await writeFile(join(dir, 'config.yml'), [
    'version: 0.1',
    'log: { level: warn }',
    `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
    `http: { addr: "${host}" }`,
    `auth: { htpasswd: { realm: zone-test, path: ${join(dir, 'htpasswd')} } }`,
    '',
  ].join('\n'));
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  const pid = child.pid!;
  const stop = async () => {
    await stopProcess(pid, async () => (await processRuns(pid)) && (await commandLine(pid))[0] === 'docker-registry', 5000);
    await rm(dir, { recursive: true, force: true });
  };
  // Up once it answers /v2/ with its challenge.
  await waitFor(async () => (await fetch(`http://${host}/v2/`)).status === 401, { timeoutMs: 20_000, what: `docker-registry answering on ${host}` }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  const docker = new Docker();
  const authconfig = { username, password, serveraddress: host };
  return {
    host, username, password, stop,
    push: async (image, repo, tag) => {
      const target = `${host}/${repo}:${tag}`;
      await docker.getImage(image).tag({ repo: `${host}/${repo}`, tag });
      try {
        const stream = await docker.getImage(target).push({ authconfig });
        const output = await new Promise<{ error?: string; aux?: { Digest?: string } }[]>((resolve, reject) => {
          docker.modem.followProgress(stream, (err: Error | null, out: { error?: string; aux?: { Digest?: string } }[]) => (err ? reject(err) : resolve(out)));
        });
        const failed = output.find((line) => line.error);
        if (failed) throw new Error(`push of ${target} failed: ${failed.error}`);
        const digest = output.find((line) => line.aux?.Digest)?.aux?.Digest;
        if (!digest) throw new Error(`push of ${target} gave no digest`);
        return digest;
      } finally {
        await docker.getImage(target).remove().catch(() => undefined);
      }
    },
  };
}
