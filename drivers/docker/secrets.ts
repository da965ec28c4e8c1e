// Sealed env values reach a container as files, never as env: Docker keeps a container's
// env in `docker inspect` and in its config on disk (config.v2.json). The driver opens
// each sealed value for its place (owner, blueprint, workloads/NAME/env/VAR) and writes
// it to HOST_DIR/VAR under a tmpfs (never on disk), 0400 in a 0500 directory, both owned
// by the user the container runs as; the directory is bind-mounted read-only at
// /run/zone/secrets, and the env says where: VAR_FILE=/run/zone/secrets/VAR (the _FILE
// convention of many images). The files are rewritten before every start (a tmpfs
// does not survive a reboot) and removed with the container.
import { spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { envField } from '../../blueprints/sealed-fields.ts';
import { WorkloadSpecError, type DriverContext, type WorkloadSpec } from '../contract.ts';

/** Where the secrets directory appears inside the container. */
export const SECRETS_TARGET = '/run/zone/secrets';
/** The default host root; /dev/shm is a tmpfs on every Linux. */
export const DEFAULT_SECRETS_ROOT = '/dev/shm/zone-secrets';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
/** /etc/passwd and /etc/group of an image are small; more is not read. */
const ACCOUNT_FILE_LIMIT = 1 << 20;

/** The env names of the workload whose values are sealed. */
export function sealedEnvNames(spec: WorkloadSpec): string[] {
  return Object.keys(spec.definition.env).filter((name) => spec.definition.env[name]?.startsWith('sealed:')).sort();
}

export interface Account { uid: number; gid: number }

/** The uid and gid a container runs as, from its image's `User` (`name`, `uid`, `name:group`, `uid:gid`, or empty: root). */
export async function accountOf(user: string, readFile: (path: string) => Promise<string>): Promise<Account> {
  const [u = '', g] = user.split(':');
  const numeric = (s: string) => /^[0-9]{1,10}$/.test(s);
  let passwd: string[][] | null = null;
  const passwdEntry = async (match: (fields: string[]) => boolean) => {
    passwd ??= (await readFile('/etc/passwd').catch(() => '')).split('\n').map((line) => line.split(':'));
    return passwd.find(match) ?? null;
  };
  let uid = 0;
  let gid = 0;
  if (u !== '' && u !== 'root') {
    const entry = await passwdEntry((f) => (numeric(u) ? f[2] === u : f[0] === u));
    if (!entry && !numeric(u)) throw new Error(`user "${u}" of the image is not in its /etc/passwd`);
    uid = numeric(u) ? Number(u) : Number(entry?.[2]);
    gid = entry ? Number(entry[3]) : 0;
  }
  if (g !== undefined && g !== '') {
    if (numeric(g)) {
      gid = Number(g);
    } else {
      const entry = (await readFile('/etc/group').catch(() => '')).split('\n').map((line) => line.split(':')).find((f) => f[0] === g);
      if (!entry) throw new Error(`group "${g}" of the image is not in its /etc/group`);
      gid = Number(entry[2]);
    }
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`user "${user}" of the image has no numeric uid and gid`);
  return { uid, gid };
}

/** A file of a created (or running) container, read through the Docker API and tar(1). */
export async function readContainerFile(container: Docker.Container, path: string): Promise<string> {
  const archive = (await container.getArchive({ path })) as unknown as Readable;
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-xO', '-f', '-'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    let size = 0;
    tar.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > ACCOUNT_FILE_LIMIT) tar.kill();
      else out.push(chunk);
    });
    tar.stdin.on('error', () => { /* the exit code tells */ });
    archive.on('error', (err) => { tar.kill(); reject(err); });
    archive.pipe(tar.stdin);
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out).toString('utf8')) : reject(new Error(`cannot read ${path} of the container (tar exit ${code})`))));
  });
}

export class SecretFiles {
  constructor(private readonly ctx: DriverContext, private readonly root: string = DEFAULT_SECRETS_ROOT) {}

  /** The host directory of a container's secrets. */
  dirOf(id: string): string {
    return join(this.root, this.ctx.node, id);
  }

  /**
   * Makes the (empty) directory the container's mount needs at create time: on a tmpfs,
   * every level ours and closed to others, none a symlink (the default root sits in the
   * world-writable /dev/shm, where someone else could have made it first).
   */
  async prepare(spec: WorkloadSpec): Promise<string> {
    const dir = this.dirOf(spec.id);
    const fail = (reason: string) => new WorkloadSpecError(spec.workload, 'env', `${reason}: sealed values are only ever written to a tmpfs the appliance owns`);
    for (const path of [this.root, join(this.root, this.ctx.node), dir]) {
      await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw fail(`cannot make ${path} (${err.code ?? err.message})`);
      });
      const st = await lstat(path);
      if (!st.isDirectory() || st.isSymbolicLink()) throw fail(`${path} is not a directory`);
      if (path !== dir && (st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0)) throw fail(`${path} is not the appliance's own 0700 directory`);
    }
    const fs = await statfs(dir);
    if (fs.type !== TMPFS_MAGIC && fs.type !== RAMFS_MAGIC) throw fail(`${this.root} is not on a tmpfs`);
    return dir;
  }

  /** Opens every sealed env value for its place and writes it, for `account`; the clear values go nowhere else. */
  async write(spec: WorkloadSpec, account: Account): Promise<void> {
    const dir = this.dirOf(spec.id);
    // Open all first: a value bound elsewhere leaves no file behind.
    const files = sealedEnvNames(spec).map((name) => {
      try {
        return { name, clear: this.ctx.openSecret(spec.definition.env[name] ?? '', { owner: spec.owner, blueprint: spec.blueprint, field: envField(spec.workload, name) }) };
      } catch (err) {
        // openSecret's reasons never hold the clear value (contract.ts).
        throw new WorkloadSpecError(spec.workload, `env.${name}`, err instanceof Error ? err.message : 'the sealed value does not open here');
      }
    });
    await chmod(dir, 0o700);
    for (const { name, clear } of files) {
      const partial = join(dir, `.${name}.partial`);
      await rm(partial, { force: true });
      await writeFile(partial, clear, { mode: 0o400, flag: 'wx' });
      await chown(partial, account.uid, account.gid);
      await rename(partial, join(dir, name));
    }
    await chown(dir, account.uid, account.gid);
    await chmod(dir, 0o500);
  }

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }
}
