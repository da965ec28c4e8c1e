// The open files of a /zone mount. Close-to-open: a reader gets the content of GridFs
// as of its open, read by range from that version (nothing is copied); a writer works on
// a local copy that is published whole when a descriptor on it is closed (flush), so
// close() returns only once other workloads can see the new content. A file written
// sequentially from empty also streams to GridFs while it is written (write-behind), and
// its close then only ends the stream; any other change falls back to publishing the
// local copy. A mount holds at most a bounded number of open files: past it, ENFILE.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FsError, type FileVersion, type FsEntry, type GridFs } from '../interfaces.ts';
import { WriteBehind } from './write-behind.ts';

/** Writes to a streamed file's local copy under way at once, at most (128 KiB each, as FUSE writes). */
const LOCAL_WRITES_AHEAD = 32;
/**
 * Bytes a file created here and written in order keeps in memory before its local copy
 * is made: a small file never needs one (each file operation is a trip through the thread pool).
 */
const MEMORY_BYTES = 128 * 1024;

export interface OpenFile {
  read(buf: Buffer, len: number, pos: number): Promise<number>;
  /** Called on every close() of a descriptor of this open file. */
  flush(): Promise<void>;
  /** The last descriptor is gone; the handle is not used again. */
  release(): Promise<void>;
}

/** A read-only view file (`proc/`, `self/`): its content as of the open. */
export class ContentFile implements OpenFile {
  constructor(private readonly content: Buffer) {}

  async read(buf: Buffer, len: number, pos: number): Promise<number> {
    return pos >= this.content.length ? 0 : this.content.copy(buf, 0, pos, Math.min(pos + len, this.content.length));
  }

  async flush(): Promise<void> {}
  async release(): Promise<void> {}
}

/** A GridFs file open for reading: the version it had at the open, read by range. */
export class VersionFile implements OpenFile {
  constructor(private readonly version: FileVersion) {}

  async read(buf: Buffer, len: number, pos: number): Promise<number> {
    return (await this.version.read(pos, len)).copy(buf, 0);
  }

  async flush(): Promise<void> {}

  release(): Promise<void> {
    return this.version.close();
  }
}

/**
 * A GridFs file open for writing. The local copy is made on first need: a write or a read
 * fetches the current content first, a truncation to zero (O_TRUNC) does not.
 */
export class WritableFile implements OpenFile {
  private copy: Promise<FileHandle> | null = null;
  /** The local copy differs from what was published. */
  private dirty = false;
  /** Something was written through this open file. */
  private written = false;
  /** Publications run one after the other, so every close() waits for its own. */
  private published: Promise<void> = Promise.resolve();
  /** Unlinked while open: nothing is published any more. */
  private orphaned = false;
  private size: number;
  private mtimeMs: number;
  private mode: number;
  private gridPath: string;
  /** The content is empty and nothing was written since: a write at 0 may start a write-behind. */
  private fromEmpty = false;
  /** The local copy's content streaming to GridFs, while every write since empty was sequential. */
  private behind: WriteBehind | null = null;
  /** Abandoned write-behinds winding down: a publication waits for them. */
  private abandoned: Promise<void> = Promise.resolve();
  /** Writes to the local copy a streamed write did not wait for (each has its own buffer). */
  private localWrites: Promise<void>[] = [];
  /** Why a write to the local copy failed: the copy is not the content any more. */
  private localWriteFailed: unknown = null;
  /** The content of a file created here, while it is written in order and small: its local copy is not made yet. */
  private memory: Buffer[] | null = null;
  /**
   * The attributes of a file created here, as created, until its first close or a change
   * of its attributes through this mount: getattr answers from them (libfuse asks right
   * after a create, and again at the open that follows) without a trip to GridFs.
   */
  private created: FsEntry | null = null;

  constructor(private readonly grid: GridFs, path: string, entry: FsEntry, private readonly copyPath: string) {
    this.gridPath = path;
    this.size = entry.size;
    this.mode = entry.mode;
    this.mtimeMs = entry.mtimeMs;
  }

  /** Changes when the file is renamed while open (the write-behind, bound to the old path, is given up). */
  get path(): string {
    return this.gridPath;
  }

  set path(path: string) {
    if (path !== this.gridPath) this.abandonBehind();
    this.gridPath = path;
  }

  /** A file just created (and published empty, `entry`): its content is empty from the start, kept in memory until it grows. */
  static created(grid: GridFs, path: string, entry: FsEntry, copyPath: string): WritableFile {
    const file = new WritableFile(grid, path, entry, copyPath);
    file.memory = [];
    file.fromEmpty = true;
    file.created = entry;
    return file;
  }

  /** All the attributes, when this file was created here and nothing changed them since but its writes. */
  createdEntry(): FsEntry | null {
    return this.created && { ...this.created, size: this.size, mtimeMs: this.mtimeMs, ctimeMs: Math.max(this.created.ctimeMs ?? 0, this.mtimeMs) };
  }

  /** Its attributes were changed (or are about to be) other than by writing: they are asked of GridFs from now on. */
  attributesChanged(): void {
    this.created = null;
  }

  /** What getattr says while the file is open here: the local size, not the published one. */
  entry(): FsEntry {
    return { type: 'file', size: this.size, mode: this.mode, mtimeMs: this.mtimeMs };
  }

  private localCopy(fromGrid: boolean): Promise<FileHandle> {
    this.copy ??= (async () => {
      // Taken before any wait: from now on writes go to the local copy.
      const memory = this.memory;
      this.memory = null;
      if (memory) {
        const file = await open(this.copyPath, 'w+', 0o600);
        const content = Buffer.concat(memory);
        if (content.length > 0) await file.write(content, 0, content.length, 0);
        return file;
      }
      if (fromGrid) await pipeline(await this.grid.read(this.path), createWriteStream(this.copyPath, { mode: 0o600 }));
      const file = await open(this.copyPath, fromGrid ? 'r+' : 'w+', 0o600);
      if (fromGrid) this.size = (await file.stat()).size;
      else this.fromEmpty = !this.written;
      return file;
    })();
    return this.copy;
  }

  /** The local copy once every write to it is done. */
  private async settledCopy(fromGrid: boolean): Promise<FileHandle> {
    const file = await this.localCopy(fromGrid);
    await Promise.all(this.localWrites.splice(0));
    if (this.localWriteFailed) throw this.localWriteFailed;
    return file;
  }

  async read(buf: Buffer, len: number, pos: number): Promise<number> {
    return (await (await this.settledCopy(true)).read(buf, 0, len, pos)).bytesRead;
  }

  async write(buf: Buffer, len: number, pos: number, now: number): Promise<number> {
    if (this.fromEmpty && pos === 0 && !this.orphaned) this.behind = new WriteBehind(this.grid, this.path, this.mode);
    this.fromEmpty = false;
    // Out of order, or the stream failed (then the local copy is published at close).
    if (this.behind && (pos !== this.behind.offset || !this.behind.usable)) this.abandonBehind();
    let bytesWritten = len;
    // A small file created here and written in order keeps its content in memory.
    if (this.behind && this.memory && pos + len <= MEMORY_BYTES) {
      const data = Buffer.from(buf.subarray(0, len));
      this.memory.push(data);
      await this.behind.append(data);
    } else if (this.behind && !this.localWriteFailed) {
      const copy = await this.localCopy(true);
      // The local copy is written too (a later read or random write, or a failed stream,
      // uses it), without waiting: each wait is a trip through the thread pool.
      const data = Buffer.from(buf.subarray(0, len));
      this.localWrites.push(copy.write(data, 0, len, pos).then(({ bytesWritten: n }) => {
        if (n !== len) throw new FsError('EIO', `the local copy of ${this.path} took ${n} of ${len} bytes`);
      }).catch((err: unknown) => { this.localWriteFailed ??= err; }));
      if (this.localWrites.length > LOCAL_WRITES_AHEAD) await this.localWrites.shift();
      await this.behind.append(data);
    } else {
      bytesWritten = (await (await this.settledCopy(true)).write(buf, 0, len, pos)).bytesWritten;
    }
    this.size = Math.max(this.size, pos + bytesWritten);
    this.touch(now);
    this.written = true;
    return bytesWritten;
  }

  async truncate(size: number, now: number): Promise<void> {
    if (this.behind && size !== this.behind.offset) this.abandonBehind();
    await (await this.settledCopy(size > 0)).truncate(size);
    // Emptied: what is written next is all of the content.
    if (size === 0 && !this.behind) this.fromEmpty = true;
    this.size = size;
    this.touch(now);
  }

  /** GridFs has no chmod of its own: the mode goes with the next publication. */
  async chmod(mode: number): Promise<void> {
    await this.settledCopy(true);
    if (mode !== this.mode) this.abandonBehind();
    this.mode = mode;
    this.dirty = true;
  }

  orphan(): void {
    this.orphaned = true;
    this.abandonBehind();
  }

  private abandonBehind(): void {
    const behind = this.behind;
    this.behind = null;
    this.fromEmpty = false;
    if (behind) this.abandon(behind);
  }

  private abandon(behind: WriteBehind): void {
    this.abandoned = Promise.all([this.abandoned, behind.abandon()]).then(() => undefined);
  }

  private touch(now: number): void {
    this.mtimeMs = now;
    this.dirty = true;
  }

  /**
   * A close that leaves the file empty with nothing written through it publishes nothing
   * yet: programs open with O_TRUNC, dup the descriptor and close the original before they
   * write (busybox dd, shell redirections), and the emptied file is not their new content.
   * The release publishes whatever is left.
   */
  async flush(): Promise<void> {
    this.created = null;
    if (this.written || this.size > 0) await this.publish();
  }

  /** Publishes the local copy if it differs from what was published, after any publication under way. */
  publish(): Promise<void> {
    this.published = this.published.catch(() => {}).then(() => this.publishIfDirty());
    return this.published;
  }

  private async publishIfDirty(): Promise<void> {
    if (!this.dirty || this.orphaned) return;
    // Cleared first: a write that lands during the publication marks it dirty again.
    this.dirty = false;
    // Taken first too: a write during the publication goes to the local copy only.
    const behind = this.behind;
    this.behind = null;
    this.fromEmpty = false;
    try {
      if (behind?.usable && behind.offset === this.size) {
        try {
          return await behind.finish();
        } catch {
          // Published from the local copy instead, which says why if it fails too.
        }
      } else if (behind) {
        this.abandon(behind);
      }
      await this.abandoned;
      await this.settledCopy(true);
      await this.grid.write(this.path, createReadStream(this.copyPath), this.mode);
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }

  async release(): Promise<void> {
    try {
      await this.publish();
    } finally {
      await this.close();
    }
  }

  /** Drops the local copy without publishing. */
  async close(): Promise<void> {
    this.abandonBehind();
    await Promise.all([this.abandoned, ...this.localWrites.splice(0)]);
    const copy = this.copy;
    this.copy = null;
    this.memory = null;
    // Never made (a small file written in order): nothing to remove.
    if (!copy) return;
    await copy.then((file) => file.close(), () => {});
    await rm(this.copyPath, { force: true });
  }
}

/** Publishes an empty file (create, truncate to zero). */
export function publishEmpty(grid: GridFs, path: string, mode: number): Promise<void> {
  return grid.write(path, Readable.from([]), mode);
}

/** The descriptors FUSE knows (fuse-native needs them non-zero and 32-bit), at most `max`. */
export class HandleTable {
  private readonly files = new Map<number, OpenFile>();
  private next = 1;

  constructor(private readonly max: number) {}

  /** Throws ENFILE when the table is full (checked before an open does any work, and by add). */
  checkRoom(): void {
    if (this.files.size >= this.max) throw new FsError('ENFILE', `this /zone mount has ${this.files.size} files open, the most it holds (limits.zoneOpenFiles); close some`);
  }

  add(file: OpenFile): number {
    this.checkRoom();
    let fd = this.next;
    while (this.files.has(fd)) fd = (fd % 0xffffffff) + 1;
    this.files.set(fd, file);
    this.next = (fd % 0xffffffff) + 1;
    return fd;
  }

  get(fd: number): OpenFile {
    const file = this.files.get(fd);
    if (!file) throw new FsError('EBADF', `no open file with handle ${fd}`);
    return file;
  }

  remove(fd: number): void {
    this.files.delete(fd);
  }

  /** The files open for writing at `path` or below it, the most recent last. */
  writers(path: string, below = false): WritableFile[] {
    return [...this.files.values()].filter((f): f is WritableFile => f instanceof WritableFile && (f.path === path || (below && f.path.startsWith(`${path}/`))));
  }

  /** Bytes the files open for writing hold (or will, once their local copy is fetched). */
  writtenBytes(): number {
    return [...this.files.values()].reduce((sum, f) => sum + (f instanceof WritableFile ? f.entry().size : 0), 0);
  }

  /** Empties the table, returning what was open. */
  drain(): OpenFile[] {
    const open = [...this.files.values()];
    this.files.clear();
    return open;
  }
}
