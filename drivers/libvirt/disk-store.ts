// The node's VM image store: pinned VM disks (`name@sha256:DIGEST`, the sha256 of the
// disk file) fetched from the grid's image store, kept as <dir>/<hex>.disk. A disk is kept
// only once its bytes hash to the digest and it stands alone (qcow2 or raw, no backing or
// data file); anything else is refused on the workload (`image digest mismatch`) and never
// booted. Workloads boot on their own overlays of it (disk.ts), so it is never written.
// What it holds is recorded for the node's collector, which removes a disk once no
// blueprint of the node pins it for the grace period.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { PinnedImage } from '../../blueprints/image-ref.ts';
import { WorkloadSpecError, type ImageSource, type LocalImages } from '../contract.ts';
import { LoadedImages } from '../images/loaded.ts';
import { KeyedLock } from '../keyed-lock.ts';
import { DiskImageError, standaloneDiskInfo, type DiskImageInfo } from '../volumes/disk-image.ts';
import { exists } from './initramfs.ts';

export class DiskStore implements LocalImages {
  private readonly records: LoadedImages;
  private readonly fetches = new KeyedLock();

  constructor(private readonly dir: string, private readonly source: ImageSource | undefined, private readonly clock: () => Date = () => new Date()) {
    this.records = new LoadedImages(join(dir, 'loaded'));
  }

  /** Whether the store holds disk `digest` (any owner's: the caller asks the grid whose it is). */
  holds(digest: string): Promise<boolean> {
    return exists(this.pathOf(digest));
  }

  /**
   * The base disk of pinned image `image` for `workload`, fetched from the grid and checked
   * when the store lacks it; WorkloadSpecError saying why not otherwise. The caller made
   * sure the owner has a disk of that digest in the grid.
   */
  async ensure(workload: string, owner: string, image: PinnedImage): Promise<DiskImageInfo> {
    const { digest } = image;
    const path = this.pathOf(digest);
    const refused = (why: string) => new WorkloadSpecError(workload, 'image', `image ${image.name}@${digest} ${why}`);
    await this.fetches.run(digest, async () => {
      if (await exists(path)) return;
      if (!this.source) throw refused('is not on this node, which has no grid image store');
      await mkdir(this.dir, { recursive: true, mode: 0o711 });
      // qemu (its own user) reads the base through the overlay: the folder is walkable, not listable.
      await chmod(this.dir, 0o711);
      const part = join(this.dir, `.${randomBytes(8).toString('hex')}.part`);
      try {
        if (!(await this.source.fetch(owner, digest, part))) throw refused('is not in the owner\'s grid image store (push it with `zone image push`)');
        const hash = createHash('sha256');
        await pipeline(createReadStream(part), hash);
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual !== digest) throw new WorkloadSpecError(workload, 'image', `image digest mismatch: the grid's disk for ${digest} has ${actual}; not booted`);
        await standaloneDiskInfo(part).catch((err: unknown) => {
          if (err instanceof DiskImageError) throw new WorkloadSpecError(workload, 'image', `${err.message.replace(part, `${image.name}@${digest}`)}; not booted`);
          throw err;
        });
        await chmod(part, 0o444);
        await rename(part, path);
        await this.records.record(digest, this.clock());
      } finally {
        await rm(part, { force: true });
      }
    });
    return standaloneDiskInfo(path);
  }

  list(): ReturnType<LocalImages['list']> {
    return this.records.list();
  }

  markUsed(digests: ReadonlySet<string>, now: Date): Promise<void> {
    return this.records.markUsed(digests, now);
  }

  /** Removes the disk (a running VM keeps reading its open file; the collector removes only what no blueprint pins). */
  async remove(digest: string): Promise<boolean> {
    await this.fetches.run(digest, async () => {
      await rm(this.pathOf(digest), { force: true });
      await this.records.forget(digest);
    });
    return true;
  }

  private pathOf(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not an image digest: ${JSON.stringify(digest)}`);
    return join(this.dir, `${hex}.disk`);
  }
}
