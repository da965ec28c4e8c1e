// What a /zone mount does, as async operations on paths and open files: `fs/` is the
// owner's GridFs, `proc/` and `self/` are read-only views, the rest does not exist. The
// FUSE adapter (fuse-ops.ts) turns these into callbacks and errnos.
import { constants } from 'node:fs';
import { join } from 'node:path';
import { FsError, type FsEntry, type GridFs, type ProcTable, type SelfInfo } from '../interfaces.ts';
import { ContentFile, HandleTable, publishEmpty, VersionFile, WritableFile, type OpenFile } from './open-files.ts';
import { ProcSnapshots } from './proc-view.ts';
import { locate, lookup, ROOT_NAMES, selfView, type Place, type ViewNode } from './tree.ts';

export interface ZoneFsOptions {
  grid: GridFs;
  proc: ProcTable;
  self: SelfInfo;
  /** A private directory for the local copies of files open for writing. */
  scratchDir: string;
  /** Open files the mount holds at most (ENFILE past it). */
  maxOpenFiles: number;
  /** Bytes the local copies of files open for writing hold together at most (ENOSPC past it). */
  maxScratchBytes: number;
}

const PERMISSION_BITS = 0o7777;

/** libfuse's name for a file unlinked while still open (`.fuse_hidden` + 16 hex digits). */
function isHiddenName(gridPath: string): boolean {
  return /\/\.fuse_hidden[0-9a-f]{16}$/.test(gridPath);
}

function entryOf(node: ViewNode): FsEntry {
  return node.type === 'dir'
    ? { type: 'dir', size: 0, mode: 0o555, mtimeMs: node.mtimeMs }
    : { type: 'file', size: node.content.length, mode: 0o444, mtimeMs: node.mtimeMs };
}

function readOnly(path: string): FsError {
  return new FsError('EROFS', `${path} is read-only (only /fs can be changed)`);
}

function unmounting(): FsError {
  return new FsError('ENOTCONN', 'the /zone mount is being unmounted');
}

function notFound(path: string): FsError {
  return new FsError('ENOENT', `${path} does not exist`);
}

export class ZoneFs {
  private readonly grid: GridFs;
  private readonly handles: HandleTable;
  private readonly procs: ProcSnapshots;
  private readonly self: ViewNode;
  private readonly mountedAtMs = Date.now();
  private copies = 0;
  private closed = false;

  constructor(private readonly options: ZoneFsOptions) {
    this.grid = options.grid;
    this.handles = new HandleTable(options.maxOpenFiles);
    this.procs = new ProcSnapshots(options.proc, options.self.node);
    this.self = selfView(options.self, this.mountedAtMs);
  }

  async getattr(path: string): Promise<FsEntry> {
    const place = locate(path);
    if (place.area === 'root') return { type: 'dir', size: 0, mode: 0o555, mtimeMs: this.mountedAtMs };
    if (place.area === 'fs') {
      const entry = this.handles.writers(place.path).at(-1)?.entry() ?? (await this.grid.stat(place.path));
      if (!entry) throw notFound(path);
      return entry;
    }
    return entryOf(await this.viewNode(place, path));
  }

  async access(path: string, mode: number): Promise<void> {
    await this.getattr(path);
    if (mode & constants.W_OK && locate(path).area !== 'fs') throw readOnly(path);
  }

  async readdir(path: string): Promise<string[]> {
    const place = locate(path);
    if (place.area === 'root') return ROOT_NAMES;
    if (place.area === 'fs') return this.grid.list(place.path);
    const node = await this.viewNode(place, path);
    if (node.type !== 'dir') throw new FsError('ENOTDIR', `${path} is a file`);
    return [...node.entries.keys()];
  }

  async open(path: string, flags: number): Promise<number> {
    const place = locate(path);
    const writing = (flags & (constants.O_WRONLY | constants.O_RDWR)) !== 0;
    this.handles.checkRoom();
    if (place.area === 'fs') {
      if (!writing) {
        if (this.closed) throw unmounting();
        return this.hold(new VersionFile(await this.grid.open(place.path)));
      }
      const entry = await this.getattr(path);
      if (entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
      return this.hold(new WritableFile(this.grid, place.path, entry, this.copyPath()));
    }
    const node = await this.viewNode(place, path);
    if (writing) throw readOnly(path);
    if (node.type !== 'file') throw new FsError('EISDIR', `${path} is a directory`);
    return this.hold(new ContentFile(node.content));
  }

  /** A descriptor for `file`; when the table filled up meanwhile, the file is let go and ENFILE thrown. */
  private async hold(file: OpenFile): Promise<number> {
    try {
      return this.handles.add(file);
    } catch (err) {
      await (file instanceof WritableFile ? file.close() : file.release());
      throw err;
    }
  }

  /** Called for a name that does not exist yet: the empty file is published at once, as creat() makes it exist. */
  async create(path: string, mode: number): Promise<number> {
    const gridPath = this.writablePath(path);
    this.handles.checkRoom();
    const copyPath = this.copyPath();
    await publishEmpty(this.grid, gridPath, mode & PERMISSION_BITS);
    return this.hold(await WritableFile.created(this.grid, gridPath, mode & PERMISSION_BITS, copyPath, Date.now()));
  }

  read(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return this.handles.get(fd).read(buf, len, pos);
  }

  write(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const file = this.writable(fd);
    this.checkScratch(file, pos + len);
    return file.write(buf, len, pos, Date.now());
  }

  flush(fd: number): Promise<void> {
    return this.handles.get(fd).flush();
  }

  async release(fd: number): Promise<void> {
    const file = this.handles.get(fd);
    this.handles.remove(fd);
    await file.release();
  }

  /** By path: a file open for writing here is truncated in its local copy, any other is published truncated. */
  async truncate(path: string, size: number): Promise<void> {
    const gridPath = this.writablePath(path);
    const open = this.handles.writers(gridPath).at(-1);
    if (open) {
      this.checkScratch(open, size);
      return open.truncate(size, Date.now());
    }
    const entry = await this.fileEntry(path);
    if (size > this.options.maxScratchBytes) throw this.scratchFull(size);
    if (size === 0) return publishEmpty(this.grid, gridPath, entry.mode);
    await this.republish(gridPath, entry, (file) => file.truncate(size, Date.now()));
  }

  ftruncate(fd: number, size: number): Promise<void> {
    const file = this.writable(fd);
    this.checkScratch(file, size);
    return file.truncate(size, Date.now());
  }

  /**
   * A workload must not fill the host's disk through local copies it never closes: growing
   * `file` to `size` is refused once the mount's copies would pass maxScratchBytes (a file
   * larger than that could not be published anyway, as it is the owner's quota).
   */
  private checkScratch(file: WritableFile, size: number): void {
    const growth = size - file.entry().size;
    if (growth <= 0) return;
    const held = this.handles.writtenBytes();
    if (held + growth > this.options.maxScratchBytes) throw this.scratchFull(held + growth);
  }

  private scratchFull(bytes: number): FsError {
    return new FsError('ENOSPC', `files open for writing in this /zone mount would hold ${bytes} bytes, more than the owner's quota (limits.ownerBytes = ${this.options.maxScratchBytes})`);
  }

  /** GridFs keeps its own change times: setting them succeeds (touch, cp -p) and changes nothing. */
  async utimens(path: string): Promise<void> {
    await this.getattr(path);
    if (locate(path).area !== 'fs') throw readOnly(path);
  }

  /** An open file's writer keeps the new mode until it publishes; a directory's mode is not changed (ignored, as before). */
  async chmod(path: string, mode: number): Promise<void> {
    const gridPath = this.writablePath(path);
    const open = this.handles.writers(gridPath).at(-1);
    if (open) return open.chmod(mode & PERMISSION_BITS);
    const entry = await this.getattr(path);
    if (entry.type === 'dir' || entry.mode === (mode & PERMISSION_BITS)) return;
    await this.grid.chmod(gridPath, mode & PERMISSION_BITS);
  }

  mkfifo(path: string, mode: number): Promise<void> {
    return this.grid.mkfifo(this.changeablePath(path), mode & PERMISSION_BITS);
  }

  mkdir(path: string, mode: number): Promise<void> {
    return this.grid.mkdir(this.changeablePath(path), mode & PERMISSION_BITS);
  }

  rmdir(path: string): Promise<void> {
    return this.grid.rmdir(this.changeablePath(path));
  }

  /** The hidden name of a file unlinked while open exists only here: libfuse unlinks it after the last close. */
  async unlink(path: string): Promise<void> {
    const gridPath = this.changeablePath(path);
    if (!isHiddenName(gridPath)) await this.grid.unlink(gridPath);
  }

  /**
   * Files open for writing here follow the rename. libfuse unlinks an open file (or one a
   * rename replaces) by renaming it to a hidden name: for GridFs that is the unlink, and
   * the open file lives on here under the hidden name, never published again.
   */
  async rename(from: string, to: string): Promise<void> {
    const source = this.changeablePath(from);
    const target = this.changeablePath(to);
    const moved = this.handles.writers(source, true);
    if (isHiddenName(target)) {
      await this.grid.unlink(source);
      for (const file of moved) file.orphan();
    } else {
      await this.grid.rename(source, target);
    }
    for (const file of moved) file.path = target + file.path.slice(source.length);
  }

  /** Hard and symbolic links: GridFs has neither, so as a file system without them, EPERM. */
  async link(path: string): Promise<void> {
    this.changeablePath(path);
    throw new FsError('EPERM', `${path}: the shared file namespace has no links`);
  }

  /** Unmounting: open files are dropped without publishing (their writers are cut off mid-way), and no new one opens. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.handles.drain().map((file) => (file instanceof WritableFile ? file.close() : file.release())));
  }

  private async viewNode(place: Place, path: string): Promise<ViewNode> {
    if (place.area !== 'proc' && place.area !== 'self') throw notFound(path);
    const node = lookup(place.area === 'self' ? this.self : await this.procs.view(), place.rest);
    if (!node) throw notFound(path);
    return node;
  }

  /** The GridFs path of a path below /fs (itself included), or EROFS. */
  private writablePath(path: string): string {
    const place = locate(path);
    if (place.area !== 'fs') throw readOnly(path);
    return place.path;
  }

  /** As writablePath, without /fs itself (it cannot be created, removed or renamed). */
  private changeablePath(path: string): string {
    const gridPath = this.writablePath(path);
    if (gridPath === '/') throw readOnly(path);
    return gridPath;
  }

  private async fileEntry(path: string): Promise<FsEntry> {
    const entry = await this.getattr(path);
    if (entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    return entry;
  }

  /** Applies `change` to a local copy of a file not open here and publishes it. */
  private async republish(gridPath: string, entry: FsEntry, change: (file: WritableFile) => Promise<void>): Promise<void> {
    const file = new WritableFile(this.grid, gridPath, entry, this.copyPath());
    try {
      await change(file);
      await file.publish();
    } finally {
      await file.close();
    }
  }

  private writable(fd: number): WritableFile {
    const file = this.handles.get(fd);
    if (!(file instanceof WritableFile)) throw new FsError('EBADF', `handle ${fd} is not open for writing`);
    return file;
  }

  private copyPath(): string {
    if (this.closed) throw unmounting();
    return join(this.options.scratchDir, `copy-${++this.copies}`);
  }
}
