// The node's side of the grid's images: uploads (checked whole, then stored in the grid's
// store under the owner, within the owner's quota), the source the drivers fetch pinned
// images from, and the periodic pass that records which images this node's blueprints
// pin and removes those no node has pinned for the grace period, from the grid's store and,
// of what the drivers loaded, from this node.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { ImageKind, ImageSource, LocalImages } from '../../drivers/contract.ts';
import { ImageArchiveError, readImageArchive } from '../../drivers/docker/archive.ts';
import { DiskImageError, standaloneDiskInfo } from '../../drivers/volumes/disk-image.ts';
import { ZoneError } from '../../lib/errors.ts';
import { collectableImages, collectableLocalImages } from './gc.ts';
import type { GridImages, ImageRow } from './grid-images.ts';
import { ImageUploads, type UploadAbout, type UploadStatus } from './uploads.ts';

export interface ImageServiceOptions {
  node: string;
  /** Where uploads wait until they are whole. */
  uploadsDir: string;
  /** Bytes of images one owner may store in the grid. */
  ownerImageBytes: number;
  /** Bytes the grid's store takes in all: open uploads declare no more together. */
  imageStoreBytes: number;
  /** Whether the trust policy lets blueprints of `owner` run here: nobody else's images are taken. */
  acceptsOwner(owner: string): boolean;
  /** How long an image no blueprint pins stays. */
  gcGraceMs: number;
  /** The images live blueprints on this node pin, by owner. */
  pinned(): { owner: string; digest: string }[];
  /** What the drivers loaded onto this node from the grid: removed once no blueprint of the node pins it for the grace period. */
  localImages: readonly LocalImages[];
  /**
   * Opens the grid's store: a new grid's store is made once enough of its servers are
   * up for its replicas, so a failed open is tried again by the next use.
   */
  openStore(): Promise<GridImages>;
  logger: Logger;
  clock?: () => Date;
}

export interface CommittedImage { digest: string; name: string; kind: ImageKind; size: number; stored: boolean }

/** Open uploads per owner, and how long one may be left alone. */
const UPLOADS_PER_OWNER = 4;
const UPLOAD_IDLE_MS = 60 * 60 * 1000;

export class ImageService implements ImageSource {
  private readonly uploads: ImageUploads;
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> = Promise.resolve();
  private opened: Promise<GridImages> | null = null;

  constructor(private readonly o: ImageServiceOptions) {
    this.uploads = new ImageUploads(o.uploadsDir, { maxBytes: o.ownerImageBytes, perOwner: UPLOADS_PER_OWNER, totalBytes: o.imageStoreBytes, idleMs: UPLOAD_IDLE_MS });
  }

  /** Opens an upload: only for owners the trust policy lets run blueprints here (any key is an owner). */
  begin(owner: string, size: number, about?: UploadAbout): Promise<UploadStatus> {
    if (!this.o.acceptsOwner(owner)) {
      return Promise.reject(new ZoneError('POLICY', 'no signer of this node\'s trust policy signs blueprints of this owner: its images could never run here, so none are taken', '/headers/authorization'));
    }
    return this.uploads.begin(owner, size, about);
  }

  status(owner: string, id: string): Promise<UploadStatus> {
    return this.uploads.status(owner, id);
  }

  append(owner: string, id: string, offset: number, body: Readable): Promise<UploadStatus> {
    return this.uploads.append(owner, id, offset, body);
  }

  /** Checks the whole upload and stores it under `owner` (once: a digest already stored is not stored again). */
  async commit(owner: string, id: string): Promise<CommittedImage> {
    const path = await this.uploads.complete(owner, id);
    const about = await this.uploads.about(owner, id);
    const checked = await (about.kind === 'disk' ? checkedDisk(path, about.name) : checkedArchive(path)).catch(async (err: unknown) => {
      if (!(err instanceof ImageArchiveError || err instanceof DiskImageError)) throw err;
      // A bad upload is not kept: sending it again would not make it good.
      await this.uploads.drop(id);
      throw new ZoneError('INVALID', `refused, nothing stored: ${err.message}`, '/body');
    });
    const { digest, name, size } = checked;
    const stored = await (await this.store()).kindOf(owner, digest);
    // One digest, one kind: a config pushed as a raw disk must not stand for the image it configures.
    if (stored && stored !== about.kind) {
      await this.uploads.drop(id);
      throw new ZoneError('CONFLICT', `the owner's image ${digest} is stored as a ${stored}, not a ${about.kind}; refused, nothing stored`, '/body');
    }
    if (!stored) {
      const used = await (await this.store()).usage(owner);
      if (used + size > this.o.ownerImageBytes) {
        throw new ZoneError('NO_SPACE', `the owner's images take ${used} bytes; this one (${size}) would pass limits.ownerImageBytes = ${this.o.ownerImageBytes}. Images no blueprint pins are removed after the grace period`, undefined, { used, limit: this.o.ownerImageBytes });
      }
    }
    const put = await (await this.store()).put(owner, digest, { name, kind: about.kind, size, pushedAt: this.now().toISOString() }, () => createReadStream(path));
    await this.uploads.drop(id);
    this.o.logger.info({ owner, digest, kind: about.kind, size, stored: put.stored }, 'image pushed');
    return { digest, name, kind: about.kind, size, stored: put.stored };
  }

  async list(owner?: string): Promise<ImageRow[]> {
    return (await this.store()).list(owner);
  }

  async kindOf(owner: string, digest: string): Promise<ImageKind | null> {
    return (await this.store()).kindOf(owner, digest);
  }

  async fetch(owner: string, digest: string, path: string): Promise<boolean> {
    return (await this.store()).fetch(owner, digest, path);
  }

  /**
   * Removes from this node what its drivers loaded from the grid and no blueprint of the
   * node pinned for the grace period; returns the removed digests. An image its engine
   * still uses (a container of it, a tag someone gave it) is kept and asked again later.
   */
  async collectLocal(): Promise<string[]> {
    const now = this.now();
    const pinned = new Set(this.o.pinned().map((image) => image.digest));
    const removed: string[] = [];
    for (const images of this.o.localImages) {
      await images.markUsed(pinned, now);
      for (const digest of collectableLocalImages(await images.list(), pinned, now.getTime(), this.o.gcGraceMs)) {
        if (await images.remove(digest)) {
          removed.push(digest);
          this.o.logger.info({ digest }, 'image removed from this node: no blueprint of the node pinned it for the grace period');
        }
      }
    }
    return removed;
  }

  /** Records this node's uses and removes what no node used for the grace period; returns the removed objects. */
  async collect(): Promise<string[]> {
    await this.collectLocal().catch((err: unknown) => {
      this.o.logger.warn({ err }, 'removing unpinned images from this node failed; tried again at the next pass');
    });
    const now = this.now();
    await (await this.store()).markUsed(this.o.node, this.o.pinned(), now);
    await this.uploads.sweep(now.getTime());
    const [stored, uses] = await Promise.all([(await this.store()).stored(), (await this.store()).uses()]);
    const gone = collectableImages(stored, uses, now.getTime(), this.o.gcGraceMs);
    await (await this.store()).forget(uses.filter((use) => use.atMs + this.o.gcGraceMs <= now.getTime()));
    for (const object of gone) {
      await (await this.store()).remove(object);
      this.o.logger.info({ object }, 'image removed: no blueprint pinned it for the grace period');
    }
    return gone;
  }

  /** Collects every `intervalMs` (a pass at a time) until close(). */
  start(intervalMs = Math.max(1000, Math.min(60_000, this.o.gcGraceMs / 4))): void {
    this.timer = setInterval(() => {
      this.pass = this.pass.then(() => this.collect()).then(() => undefined, (err: unknown) => {
        this.o.logger.warn({ err }, 'image garbage collection failed; tried again at the next pass');
      });
    }, intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pass;
  }

  private store(): Promise<GridImages> {
    if (!this.opened) {
      const opening = this.o.openStore();
      opening.catch(() => {
        if (this.opened === opening) this.opened = null;
      });
      this.opened = opening;
    }
    return this.opened;
  }

  private now(): Date {
    return this.o.clock?.() ?? new Date();
  }
}

/** An image archive, checked whole: its digest is its config's sha256. */
async function checkedArchive(path: string): Promise<{ digest: string; name: string; size: number }> {
  const archive = await readImageArchive(createReadStream(path));
  return { digest: archive.digest, name: archive.repoTags[0] ?? archive.digest, size: archive.size };
}

/** A VM disk, checked to stand alone (qcow2 or raw, no backing or data file): its digest is the file's sha256. */
async function checkedDisk(path: string, name: string | undefined): Promise<{ digest: string; name: string; size: number }> {
  await standaloneDiskInfo(path);
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  const digest = `sha256:${hash.digest('hex')}`;
  return { digest, name: name ?? digest, size: (await stat(path)).size };
}
