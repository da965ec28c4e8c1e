// In-memory GridFs and ProcTable for the FUSE tests: the contract's behaviour and errors,
// nothing more (the NATS ones are tested on their own).
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { FsError, type ErrnoName, type FileVersion, type FsEntry, type FsOwner, type FsUsage, type GridFs, type ProcEntry, type ProcTable } from '../../../appliance/pseudokernel/interfaces.ts';

interface Node {
  type: FsEntry['type'];
  data: Buffer;
  mode: number;
  mtimeMs: number;
  uid?: number;
  gid?: number;
  target?: string;
}

function fsError(code: ErrnoName, path: string): FsError {
  return new FsError(code, path);
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

export class MemoryGridFs implements GridFs {
  readonly nodes = new Map<string, Node>([['/', { type: 'dir', data: Buffer.alloc(0), mode: 0o755, mtimeMs: Date.now() }]]);
  /** Every publication, in order. */
  readonly published: string[] = [];
  /** Versions opened and not closed yet. */
  openVersions = 0;
  /** Writes whose source is still being read (a write-behind streaming). */
  writing = 0;
  /** The next call of this method fails with this error (a GridFs that lost NATS). */
  failNext: { method: keyof GridFs; error: Error } | null = null;

  private check(method: keyof GridFs): void {
    const failure = this.failNext;
    if (failure?.method !== method) return;
    this.failNext = null;
    throw failure.error;
  }

  private dirAt(path: string): Node {
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    if (node.type !== 'dir') throw fsError('ENOTDIR', path);
    return node;
  }

  private childrenOf(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    return [...this.nodes.keys()].filter((p) => p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'));
  }

  /** The content of a file, for the tests' checks. */
  content(path: string): Buffer | undefined {
    return this.nodes.get(path)?.data;
  }

  async stat(path: string): Promise<FsEntry | null> {
    this.check('stat');
    const node = this.nodes.get(path);
    return node ? { type: node.type, size: node.data.length, mtimeMs: node.mtimeMs, mode: node.mode, uid: node.uid, gid: node.gid, target: node.target } : null;
  }

  async list(dir: string): Promise<string[]> {
    this.check('list');
    this.dirAt(dir);
    return this.childrenOf(dir).map((p) => p.slice(p.lastIndexOf('/') + 1));
  }

  async read(path: string): Promise<Readable> {
    this.check('read');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    if (node.type === 'dir') throw fsError('EISDIR', path);
    return Readable.from([node.data]);
  }

  async open(path: string): Promise<FileVersion> {
    this.check('open');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    if (node.type === 'dir') throw fsError('EISDIR', path);
    // A write replaces a node's data: this one stays as of the open.
    const data = node.data;
    this.openVersions++;
    let open = true;
    return {
      size: data.length,
      read: async (position, length) => data.subarray(position, position + length),
      close: async () => {
        if (open) this.openVersions--;
        open = false;
      },
    };
  }

  async write(path: string, source: Readable, mode = 0o644): Promise<void> {
    this.check('write');
    this.writing++;
    const data = await buffer(source).finally(() => this.writing--);
    this.dirAt(parentOf(path));
    if (this.nodes.get(path)?.type === 'dir') throw fsError('EISDIR', path);
    this.nodes.set(path, { type: 'file', data, mode, mtimeMs: Date.now() });
    this.published.push(path);
  }

  async mkdir(path: string, mode = 0o755): Promise<void> {
    this.check('mkdir');
    this.dirAt(parentOf(path));
    if (this.nodes.has(path)) throw fsError('EEXIST', path);
    this.nodes.set(path, { type: 'dir', data: Buffer.alloc(0), mode, mtimeMs: Date.now() });
  }

  async rmdir(path: string): Promise<void> {
    this.check('rmdir');
    this.dirAt(path);
    if (this.childrenOf(path).length > 0) throw fsError('ENOTEMPTY', path);
    this.nodes.delete(path);
  }

  async unlink(path: string): Promise<void> {
    this.check('unlink');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    if (node.type === 'dir') throw fsError('EISDIR', path);
    this.nodes.delete(path);
  }

  async chmod(path: string, mode: number): Promise<void> {
    this.check('chmod');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    Object.assign(node, { mode, mtimeMs: Date.now() });
  }

  async chown(path: string, uid: number | undefined, gid: number | undefined): Promise<void> {
    this.check('chown');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    Object.assign(node, { uid: uid ?? node.uid, gid: gid ?? node.gid });
  }

  async utimens(path: string, _atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void> {
    this.check('utimens');
    const node = this.nodes.get(path);
    if (!node) throw fsError('ENOENT', path);
    node.mtimeMs = mtimeMs ?? node.mtimeMs;
  }

  async mknod(path: string, type: 'file' | 'fifo' | 'socket', mode: number, owner: FsOwner): Promise<FsEntry> {
    this.check('mknod');
    this.create(path, { type, data: Buffer.alloc(0), mode, mtimeMs: Date.now(), ...owner });
    return (await this.stat(path))!;
  }

  async symlink(target: string, path: string, owner: FsOwner): Promise<void> {
    this.check('symlink');
    this.create(path, { type: 'symlink', data: Buffer.from(target), target, mode: 0o777, mtimeMs: Date.now(), ...owner });
  }

  private create(path: string, node: Node): void {
    this.dirAt(parentOf(path));
    if (this.nodes.has(path)) throw fsError('EEXIST', path);
    this.nodes.set(path, node);
  }

  async readlink(path: string): Promise<string> {
    this.check('readlink');
    const target = this.nodes.get(path)?.target;
    if (target === undefined) throw fsError(this.nodes.has(path) ? 'EINVAL' : 'ENOENT', path);
    return target;
  }

  /** Hard links are NatsGridFs's (tested there): here a refusal. */
  async link(_existing: string, path: string): Promise<void> {
    throw fsError('EPERM', path);
  }

  async usage(): Promise<FsUsage> {
    const usedBytes = [...this.nodes.values()].reduce((sum, node) => sum + node.data.length, 0);
    return { totalBytes: 2 ** 30, usedBytes };
  }

  async rename(from: string, to: string): Promise<void> {
    this.check('rename');
    const source = this.nodes.get(from);
    if (!source) throw fsError('ENOENT', from);
    this.dirAt(parentOf(to));
    const target = this.nodes.get(to);
    if (target?.type === 'dir' && source.type === 'file') throw fsError('EISDIR', to);
    if (target?.type === 'file' && source.type === 'dir') throw fsError('ENOTDIR', to);
    if (target?.type === 'dir' && this.childrenOf(to).length > 0) throw fsError('ENOTEMPTY', to);
    for (const [path, node] of [...this.nodes]) {
      if (path !== from && !path.startsWith(`${from}/`)) continue;
      this.nodes.delete(path);
      this.nodes.set(to + path.slice(from.length), node);
    }
  }
}

export class MemoryProcTable implements ProcTable {
  lists = 0;

  constructor(public entries: ProcEntry[]) {}

  async list(): Promise<ProcEntry[]> {
    this.lists++;
    return this.entries;
  }
}
