// A container image booted as a VM: its root file system, exported from the local dockerd
// (a created container, never started), becomes a gzip'd newc cpio cached per image id;
// each workload's initrd is that archive followed by a small one holding its /init (the
// kernel unpacks concatenated archives in order).
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, chmod, copyFile, lstat, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';

export interface ImageRootfs {
  /** The cached gzip'd cpio of the image's root file system. */
  archive: string;
  imageId: string;
  /** The image's default command (Entrypoint + Cmd), used when the workload has none. */
  defaultArgv: string[];
  env: Record<string, string>;
  workdir: string | null;
}

/** Bumped when the archive's layout changes, so older cached archives are not reused. */
const ARCHIVE_FORMAT = 'rootfs-v2';

export class ImageNotFoundError extends Error {}
export class ImageNotBootableError extends Error {}

/** How long one tool may run: unpacking or packing a large image takes a while, a hang is killed. */
const RUN_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs a tool in its own process group, killed with everything it started (a shell
 * pipeline) when it runs longer than `timeoutMs`.
 */
function run(command: string, args: string[], options: { cwd?: string; stdin?: Readable; timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? RUN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch { /* already gone */ }
    }, timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-2000); });
    child.stdin.on('error', () => { /* the exit code reports the failure */ });
    if (options.stdin) {
      options.stdin.on('error', (err) => { child.kill(); reject(err); });
      options.stdin.pipe(child.stdin);
    } else {
      child.stdin.end();
    }
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs / 1000} s`));
      else if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${stderr.trim()}`));
    });
  });
}

/** Packs `dir` as a gzip'd newc cpio into `out` (written beside it, then renamed). */
async function packCpio(dir: string, out: string): Promise<void> {
  const partial = `${out}.partial`;
  await run('sh', ['-c', `find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > ${JSON.stringify(partial)}`], { cwd: dir });
  await rename(partial, out);
}

function envRecord(list: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  if (!Array.isArray(list)) return env;
  for (const item of list) {
    if (typeof item !== 'string') continue;
    const eq = item.indexOf('=');
    if (eq > 0) env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The image's rootfs archive, built once per image id under `cacheDir`. */
export async function imageRootfs(docker: Docker, image: string, cacheDir: string): Promise<ImageRootfs> {
  let info: Docker.ImageInspectInfo;
  try {
    info = await docker.getImage(image).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) throw new ImageNotFoundError(`no local docker image ${image} (no registry is used: load or build it first)`);
    throw err;
  }
  const imageId = info.Id.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(imageId)) throw new Error(`dockerd returned an unexpected image id for ${image}`);
  const config = info.Config ?? ({} as Docker.ImageInspectInfo['Config']);
  const result: ImageRootfs = {
    archive: join(cacheDir, `${imageId}.${ARCHIVE_FORMAT}.cpio.gz`),
    imageId,
    defaultArgv: [...stringList(config.Entrypoint), ...stringList(config.Cmd)],
    env: envRecord(config.Env),
    workdir: typeof config.WorkingDir === 'string' && config.WorkingDir !== '' ? config.WorkingDir : null,
  };
  if (await exists(result.archive)) return result;

  await mkdir(cacheDir, { recursive: true, mode: 0o711 });
  const work = await mkdtemp(join(cacheDir, 'build-'));
  const container = await docker.createContainer({ Image: imageId, Cmd: ['/bin/true'], Labels: { 'zone.purpose': 'vm-rootfs-export' } });
  try {
    const root = join(work, 'root');
    await mkdir(root);
    await run('tar', ['-x', '--numeric-owner', '-C', root], { stdin: (await container.export()) as unknown as Readable });
    if (!(await lstat(join(root, 'bin/sh')).then(() => true, () => false))) throw new ImageNotBootableError(`image ${image} has no /bin/sh for the guest init`);
    // docker export leaves /dev/console as an empty regular file (a bind-mount target): the
    // kernel would open it as the init's console and the guest's output would vanish.
    await rm(join(root, 'dev'), { recursive: true, force: true });
    await mkdir(join(root, 'dev'), { mode: 0o755 });
    await run('mknod', ['-m', '600', join(root, 'dev/console'), 'c', '5', '1'], { timeoutMs: 30_000 });
    await run('mknod', ['-m', '666', join(root, 'dev/null'), 'c', '1', '3'], { timeoutMs: 30_000 });
    await rm(join(root, '.dockerenv'), { force: true });
    await packCpio(root, result.archive);
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
  return result;
}

/**
 * Writes the workload's initrd: the image archive followed by an archive holding `/init`
 * and `extra`, host files to put into the initrd too (absolute path inside -> host path).
 */
export async function writeWorkloadInitrd(rootfsArchive: string, initScript: string, out: string, extra: Record<string, string> = {}): Promise<void> {
  const work = await mkdtemp(`${out}.build-`);
  try {
    const root = join(work, 'root');
    await mkdir(root);
    await writeFile(join(root, 'init'), initScript, { mode: 0o755 });
    for (const [inside, host] of Object.entries(extra)) {
      await mkdir(dirname(join(root, inside)), { recursive: true });
      await copyFile(host, join(root, inside));
    }
    await chmod(join(root, 'init'), 0o755);
    const initArchive = join(work, 'init.cpio.gz');
    await packCpio(root, initArchive);
    // The init may hold opened secrets: only root (and qemu, by libvirt's relabelling) reads it.
    const partial = `${out}.partial`;
    const sink = createWriteStream(partial, { mode: 0o600 });
    await pipeline(createReadStream(rootfsArchive), sink, { end: false });
    await pipeline(createReadStream(initArchive), sink);
    await rename(partial, out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}
