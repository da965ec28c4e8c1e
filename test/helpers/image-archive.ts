// Images built on the host without a registry: the busybox rootfs of zone/busybox with
// one extra file, imported as a new image and saved as a `docker save` archive. The
// image is removed from dockerd again (unless `keep`), so only the archive has it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BuiltImage {
  /** The archive (docker save). */
  path: string;
  /** The image ID, `sha256:HEX`: what a blueprint pins. */
  digest: string;
  tag: string;
}

/** Builds `tag` with /zone-extra.txt holding `content`, saves it under `dir`. */
export async function buildImageArchive(dir: string, tag: string, content: string | Buffer, options: { keep?: boolean } = {}): Promise<BuiltImage> {
  const work = await mkdtemp(join(tmpdir(), 'zone-image-'));
  try {
    const container = (await run('docker', ['create', 'zone/busybox', 'true'])).stdout.trim();
    const rootfs = join(work, 'rootfs.tar');
    try {
      await run('docker', ['export', '-o', rootfs, container]);
    } finally {
      await run('docker', ['rm', container]);
    }
    await writeFile(join(work, 'zone-extra.txt'), content);
    await run('tar', ['-rf', rootfs, '-C', work, 'zone-extra.txt']);
    const digest = (await run('docker', ['import', rootfs, tag])).stdout.trim();
    const path = join(dir, `${tag.replace(/[^a-z0-9]+/g, '-')}.tar`);
    await run('docker', ['save', '-o', path, tag]);
    if (!options.keep) await removeImage(digest);
    return { path, digest, tag };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Removes an image from dockerd with every tag it has; nothing when it is not there. */
export async function removeImage(digest: string): Promise<void> {
  await run('docker', ['rmi', '-f', digest]).catch(() => undefined);
}
