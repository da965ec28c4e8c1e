// Pinned images (`name@sha256:DIGEST`): the owner must have the image in the grid's
// image store, or one of the node's registries must have it; a node that lacks it
// fetches the archive, checks it against the digest and only then loads it (or pulls it
// and checks what came, registries.ts). Anything that does not match is refused on the workload
// (`image digest mismatch`) and never loaded, never run. What is loaded is recorded
// (../images/loaded.ts) for the node's collector, which removes it from dockerd once no
// blueprint of the node pins it for the grace period.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { PinnedImage } from '../../blueprints/image-ref.ts';
import { WorkloadSpecError, type ImageSource, type LocalImages } from '../contract.ts';
import type { LoadedImages } from '../images/loaded.ts';
import type { KeyedLock } from '../keyed-lock.ts';
import { ImageArchiveError, readImageArchive } from './archive.ts';
import { statusCodeOf } from './errors.ts';
import { inspectImage, isPresent, loadImageStream } from './images.ts';
import { pullPinned, pulledFromRegistry, type RegistryPullContext } from './registries.ts';

export interface PinnedImageContext {
  docker: Docker;
  /** The grid's images; none: a pinned image must be on the node already, or in a registry. */
  source: ImageSource | undefined;
  /** Where fetched archives wait for their check and load. */
  dir: string;
  /** By digest: one fetch and load of an image at a time. */
  fetches: KeyedLock;
  /** The node config's registries, tried last. */
  registries: RegistryPullContext;
  /** What this node loaded into dockerd from the grid. */
  loaded: LoadedImages;
  clock?: () => Date;
}

/**
 * Makes pinned image `image` of `owner` present for `workload`, or throws WorkloadSpecError
 * saying why not. In order: on the node already (and the owner's to run: in its grid
 * store, or pulled from one of the node's registries), fetched from the owner's grid
 * store, pulled from the node's registries.
 */
export async function ensurePinnedImage(ctx: PinnedImageContext, workload: string, owner: string, image: PinnedImage, progress: (line: string) => void): Promise<void> {
  const { digest } = image;
  const hasRegistries = ctx.registries.registries.length > 0;
  // A grid store that cannot be asked (not open yet) does not keep the registries from being tried.
  let gridTrouble: unknown = null;
  const kind = ctx.source ? await ctx.source.kindOf(owner, digest).catch((err: unknown) => {
    if (!hasRegistries) throw err;
    gridTrouble = err;
    return null;
  }) : null;
  if (kind === 'disk') throw new WorkloadSpecError(workload, 'image', `image ${image.name}@${digest} is a VM disk: a workload of kind vm boots it`);
  const inGrid = kind === 'container';
  const here = await inspectImage(ctx.docker, digest);
  // Another owner's image, loaded from its grid store, is not this owner's to run.
  if (here && (!ctx.source || inGrid || pulledFromRegistry(here.RepoDigests, ctx.registries.registries))) return;
  const missing = ctx.source ? 'is not in the owner\'s grid image store (push it with `zone image push`)' : 'is not on this node, which has no grid image store';
  if (inGrid && ctx.source) return fetchFromGrid(ctx, ctx.source, workload, owner, image);
  if (!hasRegistries) throw new WorkloadSpecError(workload, 'image', `image ${image.name}@${digest} ${missing}`);
  await pullPinned(ctx.registries, workload, image, missing, progress).catch((err: unknown) => {
    // No registry gave it, and the grid, which may have it, could not be asked: tried again later.
    throw gridTrouble ?? err;
  });
}

async function fetchFromGrid(ctx: PinnedImageContext, source: ImageSource, workload: string, owner: string, image: PinnedImage): Promise<void> {
  const { digest } = image;
  await ctx.fetches.run(digest, async () => {
    if (await isPresent(ctx.docker, digest)) return;
    await mkdir(ctx.dir, { recursive: true, mode: 0o700 });
    const path = join(ctx.dir, `${randomBytes(8).toString('hex')}.tar`);
    try {
      if (!(await source.fetch(owner, digest, path))) throw new WorkloadSpecError(workload, 'image', `image ${image.name}@${digest} is not in the owner's grid image store (push it with \`zone image push\`)`);
      const archive = await readImageArchive(createReadStream(path)).catch((err: unknown) => {
        if (err instanceof ImageArchiveError) throw new WorkloadSpecError(workload, 'image', `image digest mismatch: the grid's archive for ${digest} does not check (${err.message}); not run`);
        throw err;
      });
      if (archive.digest !== digest) throw new WorkloadSpecError(workload, 'image', `image digest mismatch: the grid's archive for ${digest} holds ${archive.digest}; not run`);
      await loadImageStream(ctx.docker, untagged(path));
      if (!(await isPresent(ctx.docker, digest))) throw new WorkloadSpecError(workload, 'image', `image digest mismatch: dockerd loaded the archive of ${digest} as another image; not run`);
      await ctx.loaded.record(digest, ctx.clock?.() ?? new Date());
    } finally {
      await rm(path, { force: true });
    }
  });
}

/** The pinned images this node loaded into dockerd, for the node's collector. */
export function loadedDockerImages(docker: Docker, loaded: LoadedImages): LocalImages {
  return {
    list: () => loaded.list(),
    markUsed: (digests, now) => loaded.markUsed(digests, now),
    async remove(digest) {
      try {
        // Never forced: dockerd refuses (409) while a container uses it, or someone tagged it since.
        await docker.getImage(digest).remove();
      } catch (err) {
        const status = statusCodeOf(err);
        if (status === 409) return false;
        if (status !== 404) throw err;
      }
      await loaded.forget(digest);
      return true;
    },
  };
}

/**
 * The archive at `path` without its names (manifest.json's RepoTags, the legacy
 * `repositories` file): loaded with them, an owner's image would take a name other
 * owners' unpinned workloads use (`zone/busybox`). A pinned image is run by its ID.
 */
function untagged(path: string): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  extract.on('entry', (header, stream, next) => {
    if (header.name === 'repositories') {
      stream.on('end', next).resume();
      return;
    }
    if (header.name !== 'manifest.json') {
      pipeline(stream, pack.entry(header)).then(() => next(), next);
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (chunk) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      // Checked by readImageArchive before: JSON with one image.
      const manifest = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>[]).map((image) => ({ ...image, RepoTags: null }));
      pack.entry({ ...header, size: undefined }, JSON.stringify(manifest), next);
    });
  });
  extract.on('finish', () => pack.finalize());
  extract.on('error', (err) => pack.destroy(err));
  createReadStream(path).on('error', (err) => extract.destroy(err)).pipe(extract);
  return pack as unknown as Readable; // tar-stream's Pack is a streamx Readable, which dockerode pipes like a Node one
}
