// A shell in a running container (docker exec with a TTY) and what a container uses now
// (docker stats). The shell is the one the image has: Nomad's exec terminal hard-coded
// /bin/bash and failed on images without it (nomad#6697).
import { request as httpRequest } from 'node:http';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { TerminalOptions, TerminalSession, WorkloadUsage } from '../contract.ts';
import { statusCodeOf } from './errors.ts';

/** Tried in this order: the first one the image has is the shell. */
export const SHELLS = ['/bin/bash', '/bin/sh', '/bin/ash'];

const LOOK_TIMEOUT_MS = 10_000;

/** Whether `path` is in container `id`'s filesystem: HEAD of its archive, so nothing runs for the look. */
function hasPath(socketPath: string, id: string, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    // Not dockerode's infoArchive: it leaves the connection of a HEAD open, holding the process.
    const request = httpRequest({
      socketPath, method: 'HEAD', agent: false, timeout: LOOK_TIMEOUT_MS,
      path: `/containers/${encodeURIComponent(id)}/archive?path=${encodeURIComponent(path)}`,
    }, (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      if (status === 200) resolve(true);
      else if (status === 404) resolve(false);
      else reject(new Error(`dockerd answered ${status} to a look for ${path} in ${id}`));
    });
    request.once('timeout', () => request.destroy(new Error(`dockerd did not answer a look for ${path} in ${id} within ${LOOK_TIMEOUT_MS} ms`)));
    request.once('error', reject);
    request.end();
  });
}

/** The first of SHELLS present in container `id`. */
export async function shellOf(socketPath: string, id: string): Promise<string> {
  for (const shell of SHELLS) if (await hasPath(socketPath, id, shell)) return shell;
  throw new Error(`the image has no shell (looked for ${SHELLS.join(', ')})`);
}

/** A shell with a TTY in container `id`; its output ends when the shell or the container ends. */
export async function execShell(docker: Docker, socketPath: string, id: string, options: TerminalOptions): Promise<TerminalSession> {
  const container = docker.getContainer(id);
  const shell = await shellOf(socketPath, id);
  const exec = await container.exec({
    Cmd: [shell], AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Env: ['TERM=xterm-256color'],
  });
  // With a TTY the stream is not framed: the bytes are the terminal's.
  const stream = await exec.start({ hijack: true, stdin: true, Tty: true }) as Duplex;
  const resize = async (cols: number, rows: number) => {
    await exec.resize({ w: cols, h: rows }).catch((err: unknown) => {
      // The shell has already ended: nothing to resize.
      if (statusCodeOf(err) !== 404 && statusCodeOf(err) !== 409) throw err;
    });
  };
  await resize(options.cols, options.rows);
  return { input: stream, output: stream, resize };
}

/** CPU time and memory of container `id` now (one sample, not a stream); null when it does not run. */
export async function containerUsage(docker: Docker, id: string): Promise<WorkloadUsage | null> {
  let stats: Docker.ContainerStats;
  try {
    stats = await docker.getContainer(id).stats({ stream: false, 'one-shot': true });
  } catch (err) {
    if (statusCodeOf(err) === 404) return null;
    throw err;
  }
  const memory = stats.memory_stats as { usage?: number; stats?: Record<string, number> } | undefined;
  if (memory?.usage === undefined) return null;
  // As `docker stats` shows it: the page cache the kernel can drop is not the workload's.
  const cache = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? 0;
  return { cpuSeconds: stats.cpu_stats.cpu_usage.total_usage / 1e9, memoryBytes: Math.max(0, memory.usage - cache) };
}
