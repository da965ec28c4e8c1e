// What a producer reads of A's stdout, as it came: the attach's chunks (subarrays of
// Docker's frames) are kept as they are and joined once, into the message that carries
// them. Reading through Readable.read() joined everything buffered into one buffer
// first, a copy of every byte before the NATS client's own, and the garbage collections
// that large allocations bring were the producer's largest cost.
import type { Readable } from 'node:stream';

export class StdoutChunks {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private waitBytes = 1;

  /** Holds at most about `highWaterBytes` before the stream is paused (and the container with it). */
  constructor(private readonly stream: Readable, private readonly highWaterBytes: number) {
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      if (this.bytes >= highWaterBytes) stream.pause();
      if (this.bytes >= this.waitBytes) this.notify();
    });
    stream.once('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.once('error', (err: Error) => {
      this.failure = err;
      this.notify();
    });
    stream.once('close', () => {
      if (!this.ended) this.failure ??= new Error('the stdout closed before its end (the attach broke or was stopped)');
      this.notify();
    });
  }

  /** Bytes held. */
  get available(): number {
    return this.bytes;
  }

  /**
   * Waits until at least `bytes` are held (or `ms` have passed, when given); false once
   * nothing is held and the stream has ended. Throws the stream's failure, once what it
   * delivered before has been taken.
   */
  async next(bytes = 1, ms?: number): Promise<boolean> {
    if (this.bytes < bytes && !this.ended && !this.failure) {
      this.waitBytes = bytes;
      await new Promise<void>((resolve) => {
        const timer = ms === undefined ? null : setTimeout(() => this.notify(), ms);
        this.wake = () => {
          if (timer) clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.bytes > 0) return true;
    if (this.failure) throw this.failure;
    return false;
  }

  /** Takes up to `max` bytes from the front: a chunk as it is when it fits, else one buffer joined from them. */
  take(max: number): Buffer {
    const parts: Buffer[] = [];
    let taken = 0;
    while (taken < max && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const n = Math.min(first.length, max - taken);
      parts.push(n === first.length ? first : first.subarray(0, n));
      if (n === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      taken += n;
    }
    this.bytes -= taken;
    if (this.bytes < this.highWaterBytes / 2 && this.stream.isPaused() && !this.stream.destroyed) this.stream.resume();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, taken);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    this.waitBytes = 1;
    wake?.();
  }
}
