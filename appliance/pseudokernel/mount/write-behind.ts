// Write-behind of a file written sequentially from its start: its bytes go to GridFs
// while they are written (chunks stream to the object store), and the new version is
// published when the stream ends, at close, as one swap: close-to-open stays. Memory is
// bounded: a writer waits while the stream's buffer is full (backpressure up to the
// workload's write()).
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { GridFs } from '../interfaces.ts';

/** Bytes buffered between the writer and the object store's publishes. */
const BUFFERED_BYTES = 4 * 1024 * 1024;

export class WriteBehind {
  /** Bytes streamed so far: the next sequential write starts here. */
  offset = 0;
  private readonly source = new PassThrough({ highWaterMark: BUFFERED_BYTES });
  private readonly published: Promise<void>;
  /** Settles (never rejects) when the write to GridFs is over, published or not. */
  private readonly over: Promise<void>;
  private failed = false;

  constructor(grid: GridFs, path: string, mode: number) {
    // The error of destroy() reaches GridFs.write through its reading; no crash before it reads.
    this.source.on('error', () => undefined);
    this.published = grid.write(path, this.source, mode);
    this.over = this.published.then(() => undefined, () => { this.failed = true; });
  }

  /** False once the stream failed or was abandoned: the content is then published another way. */
  get usable(): boolean {
    return !this.failed && !this.source.destroyed;
  }

  /** Streams `data` (its own: not changed afterwards), waiting while the buffer is full. */
  async append(data: Buffer): Promise<void> {
    this.offset += data.length;
    if (this.source.write(data)) return;
    await Promise.race([once(this.source, 'drain'), this.over]);
  }

  /** Ends the stream: resolves once the new version is published (rejects as GridFs.write does). */
  finish(): Promise<void> {
    this.source.end();
    return this.published;
  }

  /** Gives up: nothing is published (the chunks stored so far are purged); resolves when it is over. */
  abandon(): Promise<void> {
    this.source.destroy(new Error('write-behind abandoned'));
    return this.over;
  }
}
