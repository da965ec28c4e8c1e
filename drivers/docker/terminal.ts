// A shell in a running container (docker exec with a TTY) and what a container uses now
// (docker stats). The shell is the one the image has: Nomad's exec terminal hard-coded
// /bin/bash and failed on images without it (nomad#6697).
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { TerminalOptions, TerminalSession, WorkloadUsage } from '../contract.ts';
import { statusCodeOf } from './errors.ts';

/** Tried in this order: the first one the image has is the shell. */
export const SHELLS = ['/bin/bash', '/bin/sh', '/bin/ash'];

/** The first of SHELLS present in the container's filesystem (HEAD of its archive: nothing runs for the look). */
export async function shellOf(container: Docker.Container): Promise<string> {
  for (const shell of SHELLS) {
    try {
      await container.infoArchive({ path: shell });
      return shell;
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }
  throw new Error(`the image has no shell (looked for ${SHELLS.join(', ')})`);
}

/** A shell with a TTY in container `id`; its output ends when the shell or the container ends. */
export async function execShell(docker: Docker, id: string, options: TerminalOptions): Promise<TerminalSession> {
  const container = docker.getContainer(id);
  const shell = await shellOf(container);
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
