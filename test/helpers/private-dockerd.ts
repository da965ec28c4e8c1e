// A dockerd of one test file's own, for tests that stop or restart it: the shared one
// serves every other test running at the same time. Its data root, exec root, socket,
// containerd namespaces and network namespace are its own; it is stopped by its PID and
// everything it left is removed when the file ends.
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createReadStream, createWriteStream, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { waitFor } from './wait.ts';

const run = promisify(execFile);

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/** dockerd makes its data root a mount point of its own, and network namespaces are mounts too. */
async function unmountUnder(roots: string[]): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '');
  const ours = mounts.filter((m) => roots.some((root) => m === root || m.startsWith(`${root}/`)));
  // Deepest first.
  for (const m of ours.sort((a, b) => b.length - a.length)) await run('umount', [m]).catch(() => {});
}

export class PrivateDockerd {
  readonly socket: string;
  /** Where its log and anything else of the test's may go; removed at the end. */
  readonly work: string;
  readonly log: string;
  private readonly dataRoot: string;
  private readonly execRoot: string;
  private readonly tag: string;
  private child: ChildProcess | null = null;

  constructor() {
    const pid = process.pid;
    this.tag = `zt${pid}`;
    this.dataRoot = `/var/lib/zone-test-dockerd-${pid}`;
    this.execRoot = `/run/zt-${pid}`; // short: containerd's sockets live under it
    this.socket = `/run/zone-test-dockerd-${pid}.sock`;
    this.work = join(tmpdir(), `zone-test-dockerd-${pid}`);
    this.log = join(this.work, 'dockerd.log');
    mkdirSync(this.work, { recursive: true });
  }

  /** The running dockerd's PID, or null while it is stopped. */
  get pid(): number | null {
    return this.child && !exited(this.child) ? this.child.pid ?? null : null;
  }

  /** A client of this dockerd. */
  client(): Docker {
    return new Docker({ socketPath: this.socket });
  }

  /** Starts it and waits until it answers. */
  async start(): Promise<void> {
    const log = openSync(this.log, 'a');
    // In a network namespace of its own: a dockerd with --bridge=none deletes `docker0`,
    // which would be the shared dockerd's. unshare execs dockerd, so the PID is dockerd's.
    this.child = spawn('unshare', ['--net', 'dockerd',
      '--host', `unix://${this.socket}`, '--data-root', this.dataRoot, '--exec-root', this.execRoot, '--pidfile', join(this.execRoot, 'dockerd.pid'),
      '--bridge=none', '--iptables=false', '--ip-masq=false',
      '--containerd-namespace', this.tag, '--containerd-plugins-namespace', `${this.tag}p`,
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    await waitFor(() => this.client().ping().then(() => true), { timeoutMs: 90_000, what: `the test dockerd on ${this.socket} (log: ${this.log})` });
  }

  /**
   * Stops it with SIGTERM to its PID, as a service manager restarts it (after a SIGKILL
   * its orphaned containerd stays a zombie until init reaps it, and a new dockerd waits
   * on that zombie's socket), runs `whileDown`, and starts it again.
   */
  async restart(whileDown: () => Promise<void> = async () => {}): Promise<void> {
    const first = this.child;
    if (!first || exited(first)) throw new Error('the test dockerd is not running');
    first.kill('SIGTERM');
    await waitFor(() => exited(first), { timeoutMs: 60_000, what: 'the test dockerd to exit' });
    await whileDown();
    await this.start();
  }

  /** `docker save` of `image` from the shared dockerd, as a tar in `work`. */
  async saveImage(image = 'zone/busybox:latest'): Promise<string> {
    const tar = join(this.work, `${image.replace(/[^a-z0-9]+/g, '-')}.tar`);
    await pipeline(await new Docker().getImage(image).get(), createWriteStream(tar));
    return tar;
  }

  /** Copies `image` from the shared dockerd into this one. */
  async loadImage(image = 'zone/busybox:latest'): Promise<void> {
    const docker = this.client();
    const stream = await docker.loadImage(createReadStream(await this.saveImage(image)));
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Removes its containers, stops it by its PID and removes its roots, socket and `work`. */
  async close(): Promise<void> {
    // A test that failed while it was down starts it again to remove its containers.
    if (this.child && exited(this.child)) await this.start().catch(() => {});
    const child = this.child;
    if (child && !exited(child)) {
      const docker = this.client();
      const ours = await docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
      child.kill('SIGTERM');
      await waitFor(() => exited(child), { timeoutMs: 30_000, what: 'the test dockerd to exit' }).catch(() => child.kill('SIGKILL'));
    }
    await unmountUnder([this.dataRoot, this.execRoot]);
    for (const path of [this.dataRoot, this.execRoot, this.socket, this.work]) rmSync(path, { recursive: true, force: true });
  }
}

/** A private dockerd, started, and closed when the test file ends. */
export async function startPrivateDockerd(): Promise<PrivateDockerd> {
  const dockerd = new PrivateDockerd();
  t.teardown(() => dockerd.close());
  await dockerd.start();
  return dockerd;
}
