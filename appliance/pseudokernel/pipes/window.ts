// The producer's window onto its pipe stream: messages go out without waiting for each
// acknowledgement, at most WINDOW_MESSAGES at once, so one round trip to the stream's
// server no longer stands between two chunks of A's stdout. Each message expects the
// stream's last sequence to be the one before it (Nats-Expected-Last-Sequence): once one
// is refused (stream full, server gone), every later one is refused too, so the stream
// never holds a gap or bytes out of order. After a refusal the window waits for what is
// in flight, reads how far the stream got, and sends the rest again after a backoff.
// This needs the producer to be the stream's only publisher, which a pipe's is.
import { setTimeout as delay } from 'node:timers/promises';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { PipeIdentity } from '../../../blueprints/pipes.ts';

/** Messages in flight at most: with PIPE_CHUNK_BYTES each, what A's stdout may run ahead of the stream. */
export const WINDOW_MESSAGES = 16;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

/** A message of the pipe's stream, as the producer sends it. */
export interface OutgoingMessage {
  data: Uint8Array;
  headers: MsgHdrs;
  msgID: string;
}

interface InFlight {
  message: OutgoingMessage;
  /** Settles true when the stream took it, false when it was refused or lost; never rejects (it may wait unwatched). */
  stored: Promise<boolean | PipeWindowError>;
  /** What `stored` settled with, once it has. */
  result?: boolean | PipeWindowError;
}

export interface PublishWindowContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  pipe: PipeIdentity;
  signal: AbortSignal;
  logger: Logger;
  /** Called once per message the stream took, in order. */
  onStored(message: OutgoingMessage): void;
}

/** The stream holds what this producer did not publish: the pipe has another publisher. */
export class PipeWindowError extends Error {}

export class PublishWindow {
  private readonly inFlight: InFlight[] = [];
  /** The stream's last sequence before inFlight[0]. */
  private base: number;
  private refusals = 0;

  constructor(private readonly ctx: PublishWindowContext, lastSequence: number) {
    this.base = lastSequence;
  }

  /** Sends `message` after those sent before; resolves once the window has room for the next. Throws only when stopped. */
  async send(message: OutgoingMessage): Promise<void> {
    while (this.inFlight.length >= WINDOW_MESSAGES) await this.settleFirst();
    this.inFlight.push(this.sent(message, this.base + this.inFlight.length));
  }

  /** Messages sent that the stream has not acknowledged yet. */
  get unacknowledged(): number {
    return this.inFlight.length;
  }

  /** Resolves once the stream holds every message sent. Throws only when stopped. */
  async flush(): Promise<void> {
    while (this.inFlight.length > 0) await this.settleFirst();
  }

  /**
   * Resolves once every message sent has landed or failed, without sending any again: a
   * producer that stops waits for this, so that the next one reads the stream's true end.
   */
  async settled(): Promise<void> {
    await Promise.all(this.inFlight.map((m) => m.stored));
  }

  private sent(message: OutgoingMessage, after: number): InFlight {
    const entry: InFlight = {
      message,
      stored: this.publish(message, after).then((result) => {
        entry.result = result;
        this.advance();
        return result;
      }),
    };
    return entry;
  }

  /** Counts the messages at the head that the stream took, as their acknowledgements come. */
  private advance(): void {
    while (this.inFlight[0]?.result === true) {
      const first = this.inFlight.shift()!;
      this.base++;
      this.refusals = 0;
      this.ctx.onStored(first.message);
    }
  }

  private publish(message: OutgoingMessage, after: number): Promise<boolean | PipeWindowError> {
    return this.ctx.js.publish(this.ctx.pipe.subject, message.data, { msgID: message.msgID, headers: message.headers, expect: { lastSequence: after } })
      .then((ack) => {
        // A duplicate is a message the stream held already: someone else publishes too.
        if (ack.duplicate || ack.seq !== after + 1) return new PipeWindowError(`pipe stream ${this.ctx.pipe.stream} took message ${message.msgID} as ${ack.duplicate ? 'a duplicate' : `sequence ${ack.seq}`}, not as sequence ${after + 1}: it has another publisher`);
        return true;
      }, (err: unknown) => {
        if (this.refusals++ === 0 && !this.ctx.signal.aborted) this.ctx.logger.warn({ pipe: this.ctx.pipe.id, msgID: message.msgID, err }, 'publishing to the pipe stream failed; retrying');
        return false;
      });
  }

  private async settleFirst(): Promise<void> {
    const first = this.inFlight[0]!;
    const stored = await first.stored;
    if (stored instanceof PipeWindowError) throw stored;
    // Taken off by advance() when it landed.
    if (!stored) await this.resend();
  }

  /**
   * The first message in flight was refused: once all have settled, the stream's last
   * sequence says how many of them it took (a prefix, by the expectations), and the
   * rest go again. A full stream or an absent server so holds the producer, and A, back.
   */
  private async resend(): Promise<void> {
    const { ctx } = this;
    for (let attempt = 0; ; attempt++) {
      if (ctx.signal.aborted) throw new Error(`publishing to pipe stream ${ctx.pipe.stream} was stopped`);
      await Promise.all(this.inFlight.map((m) => m.stored));
      const waitMs = Math.min(RETRY_FIRST_MS * 2 ** Math.min(attempt, 16), RETRY_MAX_MS);
      await delay(waitMs, undefined, { signal: ctx.signal }).catch(() => undefined);
      if (ctx.signal.aborted) continue;
      const last = await ctx.jsm.streams.info(ctx.pipe.stream).then((i) => i.state.last_seq, () => null);
      if (last === null) continue;
      const landed = last - this.base;
      if (landed < 0 || landed > this.inFlight.length) throw new PipeWindowError(`pipe stream ${ctx.pipe.stream} is at sequence ${last}, outside the producer's window ${this.base}..${this.base + this.inFlight.length}: it has another publisher`);
      for (const m of this.inFlight.splice(0, landed)) ctx.onStored(m.message);
      this.base = last;
      const again = this.inFlight.map((m, i) => this.sent(m.message, this.base + i));
      this.inFlight.splice(0, this.inFlight.length, ...again);
      const first = again.length === 0 ? true : await again[0]!.stored;
      if (first instanceof PipeWindowError) throw first;
      if (first) return;
    }
  }
}
