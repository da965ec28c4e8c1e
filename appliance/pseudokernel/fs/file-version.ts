// A file version read by range, straight from the object store's chunks: an open file
// costs an index of its chunks' stream sequences and the few chunks around where it is
// read, never a copy of the file. A sequential reader is fed by a consumer that delivers
// the chunks ahead of it in order (as fast as a whole-object stream); a read elsewhere
// fetches its chunks one by one with direct gets.
import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { FsError, type FileVersion } from '../interfaces.ts';
import { placedOrderedConsumer } from '../nats/placed-consumer.ts';

export interface ChunkIndex {
  /** The stream holding the chunks, and the chunks' subject in it. */
  stream: string;
  subject: string;
  /** Stream sequence of each chunk, in order. */
  seqs: number[];
  /** Offset of each chunk in the file, in order. */
  offsets: number[];
  size: number;
}

/** Chunks fetched ahead of a sequential reader (128 KiB each as the object store writes them). */
const READ_AHEAD = 16;

/** A consumer delivering the chunks from `next` on, in order. */
interface Sequence {
  next: number;
  opened: Promise<{ messages: ConsumerMessages; iterator: AsyncIterator<JsMsg> }>;
  /** Takes run one after the other: each waits for the one before. */
  taken: Promise<unknown>;
}

export class ChunkedVersion implements FileVersion {
  /** Chunks by index: those of the current read, one behind it and those fetched ahead. */
  private readonly cache = new Map<number, Promise<Buffer>>();
  private closing: Promise<void> | null = null;
  /** The chunk read last: a read of it or of the next one is sequential. */
  private last = -1;
  private sequence: Sequence | null = null;

  constructor(
    private readonly js: JetStreamClient,
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
    const first = this.chunkAt(position);
    // The kernel's read-ahead sends several reads at once, not quite in order: one near
    // the last read is sequential too.
    const sequential = first >= this.last - READ_AHEAD && first <= this.last + READ_AHEAD + 1;
    const lastOfRead = this.chunkAt(end - 1);
    for (const i of this.cache.keys()) {
      if (i < Math.min(first, this.last) - READ_AHEAD || i > Math.max(lastOfRead, this.last) + 2 * READ_AHEAD) this.cache.delete(i);
    }
    for (let i = first; i < this.index.seqs.length && this.index.offsets[i]! < end; i++) {
      // Asked before the chunks ahead, so that one consumer delivers them all in order.
      const asked = this.chunk(i, sequential);
      if (sequential) this.readAhead(i);
      const chunk = await asked;
      const start = this.index.offsets[i]!;
      parts.push(chunk.subarray(Math.max(position - start, 0), Math.min(end - start, chunk.length)));
      this.last = sequential ? Math.max(this.last, i) : i;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.cache.clear();
      if (this.sequence) endSequence(this.sequence);
      this.sequence = null;
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

  /** Asks for the chunks after `i` that are not cached yet, in order. */
  private readAhead(i: number): void {
    for (let next = i + 1; next <= Math.min(i + READ_AHEAD, this.index.seqs.length - 1); next++) {
      if (!this.cache.has(next)) void this.chunk(next, true).catch(() => undefined);
    }
  }

  private chunk(i: number, sequential: boolean): Promise<Buffer> {
    return this.cache.get(i) ?? this.remember(i, sequential ? this.fromSequence(i) : this.fetch(i));
  }

  private remember(i: number, fetched: Promise<Uint8Array>): Promise<Buffer> {
    const found = fetched.then((data) => this.checked(i, data));
    // A failed fetch is not kept: the next read asks again.
    found.catch(() => { if (this.cache.get(i) === found) this.cache.delete(i); });
    this.cache.set(i, found);
    return found;
  }

  /**
   * Chunk `i` from the consumer. It is (re)started at `i` unless it delivers `i` soon: a
   * little ahead of it, the chunks between are taken (and kept) too; a little behind it
   * (already delivered, dropped since), `i` is asked directly.
   */
  private fromSequence(i: number): Promise<Uint8Array> {
    // All before any await: the reads ahead asked at once all take from one consumer.
    let sequence = this.sequence;
    if (sequence && i < sequence.next && sequence.next - i <= 2 * READ_AHEAD) return this.fetch(i);
    if (!sequence || i < sequence.next || i - sequence.next > 2 * READ_AHEAD) sequence = this.sequence = this.startSequence(i, sequence);
    while (sequence.next < i) {
      const between = sequence.next;
      const taken = this.take(sequence);
      if (this.cache.has(between)) void taken.catch(() => undefined);
      else void this.remember(between, taken).catch(() => undefined);
    }
    return this.take(sequence);
  }

  /** The consumer's next chunk, once the takes before it are done. */
  private async take(sequence: Sequence): Promise<Uint8Array> {
    const i = sequence.next++;
    const taken = sequence.taken.then(async () => (await sequence.opened).iterator.next());
    sequence.taken = taken.catch(() => undefined);
    const { value, done } = await taken;
    // Not what the index says (it cannot be, as chunks never change): asked directly.
    return done || value.seq !== this.index.seqs[i] ? this.fetch(i) : value.data;
  }

  private startSequence(i: number, previous: Sequence | null): Sequence {
    if (previous) endSequence(previous);
    const opened = (async () => {
      const consumer = await placedOrderedConsumer(this.js, this.index.stream, {
        filter_subjects: this.index.subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.index.seqs[i]!,
      });
      const messages = await consumer.consume({ max_messages: READ_AHEAD });
      return { messages, iterator: messages[Symbol.asyncIterator]() };
    })();
    return { next: i, opened, taken: opened.catch(() => undefined) };
  }

  /**
   * Chunk `i` by a direct get (the object store's streams allow them): answered by any server
   * of the stream, not the JetStream API; one catching up may not have it yet, so a miss is
   * asked of the stream's leader.
   */
  private async fetch(i: number): Promise<Uint8Array> {
    const seq = this.index.seqs[i]!;
    const message = (await this.jsm.direct.getMessage(this.index.stream, { seq })) ?? (await this.jsm.streams.getMessage(this.index.stream, { seq }));
    if (!message) throw this.damaged(i, 'is missing');
    return message.data;
  }

  private checked(i: number, data: Uint8Array): Buffer {
    const expected = (this.index.offsets[i + 1] ?? this.index.size) - this.index.offsets[i]!;
    if (data.length !== expected) throw this.damaged(i, `has ${data.length} bytes, not ${expected}`);
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  private damaged(i: number, what: string): FsError {
    return new FsError('EIO', `the content of ${this.path} is damaged: chunk ${i} (sequence ${this.index.seqs[i]} of ${this.index.stream}) ${what}`);
  }
}

/**
 * Ends a sequence once the takes asked of it are done (its messages exist: they arrive),
 * in the background: nothing waits for it, and a consumer left behind (the server gone)
 * expires on the server by itself.
 */
function endSequence(sequence: Sequence): void {
  void (async () => {
    await sequence.taken;
    const { messages, iterator } = await sequence.opened;
    // close() resolves once the iterator is done with: ended first.
    await iterator.return?.();
    await messages.close();
  })().catch(() => undefined);
}
