// A file version read by range, straight from the object store's chunks: an open file
// costs an index of its chunks' stream sequences and the few chunks it read last, never a
// copy of the file. Sequential reads fetch the next chunk ahead.
import type { JetStreamManager } from '@nats-io/jetstream';
import { FsError, type FileVersion } from './contract.ts';

export interface ChunkIndex {
  /** The stream holding the chunks. */
  stream: string;
  /** Stream sequence of each chunk, in order. */
  seqs: number[];
  /** Offset of each chunk in the file, in order. */
  offsets: number[];
  size: number;
}

/** Chunks kept per open version: the one being read, the one fetched ahead, one behind. */
const CACHED_CHUNKS = 3;

export class ChunkedVersion implements FileVersion {
  /** Most recently used last. */
  private readonly cache = new Map<number, Promise<Buffer>>();
  private closing: Promise<void> | null = null;

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly index: ChunkIndex,
    private readonly path: string,
    private readonly release: () => Promise<void>,
  ) {}

  get size(): number {
    return this.index.size;
  }

  async read(position: number, length: number): Promise<Buffer> {
    if (this.closing) throw new FsError('EBADF', `${this.path} is closed`);
    const end = Math.min(position + length, this.size);
    if (position >= end) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (let i = this.chunkAt(position); i < this.index.seqs.length && this.index.offsets[i]! < end; i++) {
      const chunk = await this.chunk(i);
      const start = this.index.offsets[i]!;
      parts.push(chunk.subarray(Math.max(position - start, 0), Math.min(end - start, chunk.length)));
      if (i + 1 < this.index.seqs.length) void this.chunk(i + 1).catch(() => undefined);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.cache.clear();
      await this.release();
    })();
    return this.closing;
  }

  /** The chunk holding byte `position` (binary search over the offsets). */
  private chunkAt(position: number): number {
    const { offsets } = this.index;
    let low = 0;
    let high = offsets.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (offsets[mid]! <= position) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  private chunk(i: number): Promise<Buffer> {
    let found = this.cache.get(i);
    if (found) {
      this.cache.delete(i);
    } else {
      found = this.fetch(i);
      // A failed fetch is not kept: the next read asks again.
      found.catch(() => this.cache.delete(i));
    }
    this.cache.set(i, found);
    while (this.cache.size > CACHED_CHUNKS) this.cache.delete(this.cache.keys().next().value!);
    return found;
  }

  private async fetch(i: number): Promise<Buffer> {
    const seq = this.index.seqs[i]!;
    const message = await this.jsm.streams.getMessage(this.index.stream, { seq });
    const expected = (this.index.offsets[i + 1] ?? this.index.size) - this.index.offsets[i]!;
    if (!message || message.data.length !== expected) {
      throw new FsError('EIO', `the content of ${this.path} is damaged: chunk ${i} (sequence ${seq} of ${this.index.stream}) ${message ? `has ${message.data.length} bytes, not ${expected}` : 'is missing'}`);
    }
    return Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
  }
}
