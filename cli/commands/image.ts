// zone image push IMAGE|FILE --key KEY: an image (a `docker save` archive, or a local
// image saved on the way) or a VM disk (qcow2/raw: any file that is not a tar) uploaded in parts to a node, into the grid's image store under
// the key's owner; a broken connection is resumed where the node says the upload ends
// (also from another run: --resume ID). Prints the reference to pin: NAME@sha256:DIGEST.
// zone image ls --key KEY: the owner's images in the grid, with the nodes that pin them.
// zone image build [--out FILE]: the bootable node image (cli/node-image/build.ts).
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import Table from 'cli-table3';
import Docker from 'dockerode';
import { readSigningKey } from '../../blueprints/keys.ts';
import { type SigningKeyPair } from '../../lib/ed25519.ts';
import { ApiError, EXIT_UNREACHABLE, NodeClient, nodeOption, nodeUrl, type ImageCommit, type ImageKind, type ImageUpload } from '../client.ts';
import { action, CliFailure, inFile } from '../output.ts';
import { bootCommandLine, buildNodeImage, NodeImageError } from '../node-image/build.ts';
import { CommandError } from '../../lib/exec.ts';
import { age } from './status.ts';
import { registerImageBox } from './image-box.ts';

/** Bytes per PATCH: well inside the node's request timeout on a slow link. */
const PART_BYTES = 8 * 2 ** 20;
/** Broken connections in a row before giving up (the upload stays on the node for an hour). */
const RETRIES = 5;

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** One progress line on a terminal, rewritten in place; nothing when stderr is not one. */
function progress(what: string, done: number, total: number): void {
  if (!process.stderr.isTTY) return;
  const percent = total ? Math.floor((done / total) * 100) : 100;
  process.stderr.write(`\rpushing ${what}: ${String(percent).padStart(3)}% (${mib(done)} of ${mib(total)})${done === total ? '\n' : ''}`);
}

/** `file`, or the local image `name` saved (docker save) to a temporary file. */
async function archiveOf(source: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  if (await stat(source).then((s) => s.isFile(), () => false)) return { path: source, cleanup: async () => undefined };
  const dir = await mkdtemp(join(tmpdir(), 'zone-push-'));
  const path = join(dir, 'image.tar');
  try {
    const docker = new Docker();
    await docker.getImage(source).inspect();
    await pipeline(await docker.getImage(source).get(), createWriteStream(path));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new CliFailure(`${source}: neither a file nor an image dockerd has (${(err as Error).message.split('\n')[0]})`);
  }
  return { path, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A tar (`ustar` at offset 257: a docker save or OCI archive) is a container image, and so
 * is a gzip'd file (a compressed archive, which the node then refuses, saying why, rather
 * than storing it as a raw disk); anything else is a VM disk, named by its file.
 */
async function uploadAboutOf(path: string): Promise<{ kind: ImageKind; name?: string }> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(262), 0, 262, 0);
    if (bytesRead === 262 && buffer.subarray(257, 262).toString('latin1') === 'ustar') return { kind: 'container' };
    if (bytesRead >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b) return { kind: 'container' };
  } finally {
    await file.close();
  }
  const name = basename(path).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128);
  return { kind: 'disk', ...(name ? { name } : {}) };
}

/** Sends the file from where the upload ends, asking the node again after a broken connection. */
async function upload(client: NodeClient, owner: SigningKeyPair, path: string, start: ImageUpload, label: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    let offset = start.offset;
    let failures = 0;
    const buffer = Buffer.alloc(PART_BYTES);
    progress(label, offset, start.size);
    while (offset < start.size) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(PART_BYTES, start.size - offset), offset);
      try {
        offset = (await client.imagePart(owner, start.id, offset, buffer.subarray(0, bytesRead))).offset;
        failures = 0;
      } catch (err) {
        const broken = err instanceof CliFailure && err.exitCode === EXIT_UNREACHABLE;
        const elsewhere = err instanceof ApiError && err.status === 409;
        if (!(broken || elsewhere) || ++failures > RETRIES) {
          throw new CliFailure(`${err instanceof Error ? err.message : String(err)}; resume with --resume ${start.id}`, err instanceof CliFailure ? err.exitCode : 1);
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * failures));
        offset = (await client.imageUploadStatus(owner, start.id)).offset;
      }
      progress(label, offset, start.size);
    }
  } finally {
    await file.close();
  }
}

/** Uploads the archive at `path` (from where upload `resume` ends, when given), then has the node check and store it. */
export async function pushArchive(client: NodeClient, owner: SigningKeyPair, path: string, options: { label: string; resume?: string }): Promise<ImageCommit> {
  const size = (await stat(path)).size;
  const start = options.resume ? await client.imageUploadStatus(owner, options.resume) : await client.imageUpload(owner, size, await uploadAboutOf(path));
  if (start.size !== size) throw new CliFailure(`--resume ${options.resume}: that upload is of ${start.size} bytes, ${options.label} has ${size}`);
  await upload(client, owner, path, start, options.label);
  return client.imageCommit(owner, start.id);
}

export function register(program: Command): void {
  const image = program.command('image').description('images in the grid\'s image store: push one, list them; build the node image');
  registerImageBox(image);

  image
    .command('build')
    .description('build the bootable node image (Debian 12, the engines, Node 20, Zone; cached by its inputs\' digest) and write it with its kernel and initrd')
    .option('--out <file>', 'the qcow2 to write; the kernel and initrd go beside it (FILE without .qcow2, plus .vmlinuz and .initrd)', 'zone-node.qcow2')
    .action(action(async (opts: { out: string }) => {
      const built = await buildNodeImage({ log: (line) => process.stderr.write(`${line}\n`) }).catch((err: unknown) => {
        throw err instanceof NodeImageError || err instanceof CommandError ? new CliFailure(`zone image build: ${err.message}`) : err;
      });
      const stem = opts.out.replace(/\.qcow2$/, '');
      const outs = { disk: `${stem}.qcow2`, kernel: `${stem}.vmlinuz`, initrd: `${stem}.initrd` };
      for (const part of ['disk', 'kernel', 'initrd'] as const) {
        await rm(outs[part], { force: true });
        await copyFile(built[part], outs[part]);
        await chmod(outs[part], 0o644); // the cache's copy is read-only; this one is the user's
      }
      const size = (await stat(outs.disk)).size;
      process.stdout.write(`${built.built ? 'built' : 'cached'} node image ${built.digest} in ${built.seconds.toFixed(1)} s: ${outs.disk} (${mib(size)}), ${outs.kernel}, ${outs.initrd}\n`);
      process.stdout.write(`boot it with the kernel and initrd beside it, command line "${bootCommandLine()}", and a config disk (cli/node-image/config-disk.ts)\n`);
    }));

  image
    .command('push')
    .description('upload an image (a docker save archive, a local image by name, or a qcow2/raw VM disk) to the grid; prints NAME@sha256:DIGEST to pin in a blueprint')
    .argument('<image>', 'a docker save archive, an image dockerd has, or a VM disk file')
    .requiredOption('--key <file>', 'the owner\'s key file: whose image it is')
    .option('--resume <id>', 'continue an upload a broken run left on the node')
    .option(...nodeOption)
    .action(action(async (source: string, opts: { key: string; node?: string; resume?: string }) => {
      const owner = inFile(opts.key, () => readSigningKey(opts.key));
      const client = new NodeClient(nodeUrl(opts.node), opts.key);
      const archive = await archiveOf(source);
      try {
        const committed = await pushArchive(client, owner, archive.path, { label: source, ...(opts.resume ? { resume: opts.resume } : {}) });
        if (!committed.stored) process.stderr.write(`the grid had ${committed.digest} already\n`);
        // An archive saved without a name (docker save IMAGE_ID) is named by its digest alone.
        const name = committed.name.startsWith('sha256:') ? 'image' : committed.name;
        process.stdout.write(`${name}@${committed.digest}\n`);
      } finally {
        await archive.cleanup();
      }
    }));

  image
    .command('ls')
    .description("the key's owner's images in the grid: name, digest, size, and the nodes whose blueprints pin them")
    .requiredOption('--key <file>', 'the owner\'s key file')
    .option(...nodeOption)
    .option('--json', 'print the API answer as JSON')
    .action(action(async (opts: { key: string; node?: string; json?: boolean }) => {
      const owner = inFile(opts.key, () => readSigningKey(opts.key));
      const images = await new NodeClient(nodeUrl(opts.node), opts.key).images(owner);
      if (opts.json) {
        process.stdout.write(JSON.stringify(images, null, 2) + '\n');
        return;
      }
      const table = new Table({ head: ['NAME', 'KIND', 'DIGEST', 'SIZE', 'PUSHED', 'PINNED ON'], style: { head: [], border: [] } });
      for (const i of images) table.push([i.name, i.kind, i.digest, mib(i.size), age(i.pushedAt), i.usedBy.map((u) => u.node).join(', ') || '-']);
      process.stdout.write(images.length ? table.toString() + '\n' : 'no images of this owner in the grid\n');
    }));
}
