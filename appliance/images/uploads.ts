// Uploads of images in parts, resumable after a broken connection: an upload is a file
// on the node that receives it, growing by appends at its current end. A connection cut
// half-way leaves what arrived; the client asks for the offset and sends the rest. Only
// a whole upload is checked and stored (service.ts). Bounded: a few uploads per owner,
// each at most the owner's image quota, and an upload left alone is dropped.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KeyedLock } from '../../drivers/keyed-lock.ts';
import type { ImageKind } from '../../drivers/contract.ts';
import { ZoneError } from '../../lib/errors.ts';

export interface UploadLimits {
  /** Largest upload (the owner's image quota). */
  maxBytes: number;
  /** Uploads one owner may have open. */
  perOwner: number;
  /** Bytes all open uploads of this node may declare together (what the grid's store could take). */
  totalBytes: number;
  /** An upload without an append for this long is dropped. */
  idleMs: number;
}

/** What the uploader says the upload is: checked against the bytes at the commit. */
export interface UploadAbout {
  kind: ImageKind;
  /** The name a disk is listed under (an archive names itself). */
  name?: string;
}

interface UploadRecord extends Partial<UploadAbout> { owner: string; size: number; createdAt: string }

export interface UploadStatus { id: string; size: number; offset: number }

const ID = /^[0-9a-f]{32}$/;

export class ImageUploads {
  private readonly locks = new KeyedLock();

  constructor(private readonly dir: string, private readonly limits: UploadLimits) {}

  /** Opens an upload of `size` bytes for `owner`. */
  async begin(owner: string, size: number, about: UploadAbout = { kind: 'container' }): Promise<UploadStatus> {
    if (size > this.limits.maxBytes) {
      throw new ZoneError('NO_SPACE', `the image is ${size} bytes, more than an owner may store (limits.ownerImageBytes = ${this.limits.maxBytes})`, '/body/size', { limit: this.limits.maxBytes });
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const all = await this.records();
    const declared = all.reduce((sum, r) => sum + r.record.size, 0);
    if (declared + size > this.limits.totalBytes) {
      throw new ZoneError('TOO_MANY', `the open image uploads on this node declare ${declared} bytes; this one would pass ${this.limits.totalBytes} (limits.imageStoreBytes); retry later`, undefined, { limit: this.limits.totalBytes });
    }
    const open = all.filter((r) => r.record.owner === owner);
    if (open.length >= this.limits.perOwner) {
      throw new ZoneError('TOO_MANY', `${open.length} image uploads of this owner are open on this node, the most it takes; finish one, or wait until one left alone is dropped`, undefined, { limit: this.limits.perOwner });
    }
    const id = randomBytes(16).toString('hex');
    await writeFile(this.partOf(id), '', { mode: 0o600 });
    await writeFile(this.recordOf(id), JSON.stringify({ owner, size, ...about, createdAt: new Date().toISOString() } satisfies UploadRecord), { mode: 0o600 });
    return { id, size, offset: 0 };
  }

  /** Where the upload ends once the append under way (if any) is done. */
  status(owner: string, id: string): Promise<UploadStatus> {
    return this.locks.run(id, () => this.current(owner, id));
  }

  private async current(owner: string, id: string): Promise<UploadStatus> {
    const record = await this.record(owner, id);
    return { id, size: record.size, offset: (await stat(this.partOf(id))).size };
  }

  /**
   * Appends `body` at `offset`, which must be where the upload ends now (409 names the
   * offset otherwise). What arrives before a broken connection stays.
   */
  async append(owner: string, id: string, offset: number, body: Readable): Promise<UploadStatus> {
    return this.locks.run(id, async () => {
      const { size } = await this.record(owner, id);
      const at = (await stat(this.partOf(id))).size;
      if (offset !== at) throw new ZoneError('CONFLICT', `upload ${id} holds ${at} bytes: send from offset ${at}`, '/headers/upload-offset', { offset: at });
      let seen = at;
      const bounded = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          seen += chunk.length;
          if (seen > size) return done(new ZoneError('TOO_LARGE', `upload ${id} is declared as ${size} bytes; this part goes past it`, '/body'));
          done(null, chunk);
        },
      });
      try {
        await pipeline(body, bounded, createWriteStream(this.partOf(id), { flags: 'a' }));
      } catch (err) {
        if (err instanceof ZoneError) {
          // A refused part leaves nothing: the upload ends where it was.
          await truncate(this.partOf(id), at);
        }
        throw err;
      }
      return { id, size, offset: (await stat(this.partOf(id))).size };
    });
  }

  /** The file of a complete upload, for the caller to check and store, then drop(). */
  async complete(owner: string, id: string): Promise<string> {
    const status = await this.current(owner, id);
    if (status.offset !== status.size) throw new ZoneError('CONFLICT', `upload ${id} holds ${status.offset} of its ${status.size} bytes: send the rest first`, '/params/id', { offset: status.offset });
    return this.partOf(id);
  }

  /** What the uploader said the upload is. */
  async about(owner: string, id: string): Promise<UploadAbout> {
    const { kind, name } = await this.record(owner, id);
    return { kind: kind === 'disk' ? 'disk' : 'container', ...(name ? { name } : {}) };
  }

  async drop(id: string): Promise<void> {
    await rm(this.recordOf(id), { force: true });
    await rm(this.partOf(id), { force: true });
  }

  /** Drops every upload nobody appended to for limits.idleMs. */
  async sweep(nowMs: number): Promise<void> {
    for (const { id } of await this.records()) {
      const touched = await stat(this.partOf(id)).then((s) => s.mtimeMs, () => 0);
      if (touched + this.limits.idleMs <= nowMs) await this.drop(id);
    }
  }

  private async record(owner: string, id: string): Promise<UploadRecord> {
    const notFound = new ZoneError('NOT_FOUND', `no upload ${id} of this owner on this node`, '/params/id');
    if (!ID.test(id)) throw notFound;
    const record = await readFile(this.recordOf(id), 'utf8').then((text) => JSON.parse(text) as UploadRecord, () => null);
    if (!record || record.owner !== owner) throw notFound;
    return record;
  }

  private async records(): Promise<{ id: string; record: UploadRecord }[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const ids = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).filter((id) => ID.test(id));
    const read = await Promise.all(ids.map(async (id) => ({ id, record: await readFile(this.recordOf(id), 'utf8').then((t) => JSON.parse(t) as UploadRecord, () => null) })));
    return read.filter((r): r is { id: string; record: UploadRecord } => r.record !== null);
  }

  private partOf(id: string): string {
    return join(this.dir, `${id}.part`);
  }

  private recordOf(id: string): string {
    return join(this.dir, `${id}.json`);
  }
}
