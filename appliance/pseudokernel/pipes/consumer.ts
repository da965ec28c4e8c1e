// The consumer end of a pipe (node of B): one incarnation of B gets the messages after
// the committed position (or from where a long input was trimmed), through the next
// marker, on its stdin, then EOF; the position moves past that marker only once the
// incarnation exits with code 0. Semantics at the top of ends.ts.
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { placedOrderedConsumer } from '../nats/placed-consumer.ts';
import { feedStep, pipeMessageOf, type FeedState } from './ends.ts';
import { readPosition, writePosition, type PipePosition } from './stream.ts';
import { endOf, type PipeEndContext } from './workload.ts';

export interface ConsumerContext extends PipeEndContext {
  /** The PIPE_POSITIONS bucket. */
  positions: KV;
  /** Payload bytes written to B's stdin, added up. */
  onWritten(bytes: number): void;
}

/**
 * - `fed`: an incarnation of B was fed and has ended (committed if it was given its whole
 *   input and exited with 0);
 * - `nothing`: B does not run, or its current incarnation has had its feeder;
 * - `interrupted`: feeding was stopped, or B is still running after its input ended
 *   (its exit is committed on a later call).
 */
export type FeedOutcome = 'fed' | 'nothing' | 'interrupted';

/**
 * How many messages the feeder fetches ahead of B (at most PIPE_CHUNK_BYTES each: 8 MiB);
 * the pull consumer asks for more as B takes them. Counted in messages, not bytes: a pull
 * by bytes ends with a 409 (Message Size Exceeds MaxBytes) once its next message does not
 * fit, and when that comes to the last pull while B has taken everything, the client
 * pulls again only after two missed heartbeats (30 s): pipes stalled 30 s and more.
 */
const PREFETCH_MESSAGES = 32;
/** What the feeder may have written that B's stdin has not taken yet. */
const FEED_AHEAD_BYTES = 2 * 1024 * 1024;
/** How often a feeder waiting for data looks whether B still runs. */
const LIVENESS_CHECK_MS = 500;
/**
 * The share of the stream's max_bytes that the input being fed may hold before what was
 * fed is purged. Without it an input longer than the stream (a consumer that runs for
 * as long as its producer does) filled it, the producer waited for room and the consumer
 * for more input, for ever. An input that fits keeps the whole of it for a next
 * incarnation of B; one that does not is taken up where it was trimmed.
 */
const TRIM_AT_SHARE = 0.75;

/** Feeds B's current incarnation if nobody has fed it yet; commits a fed incarnation that exited with 0. */
export async function feedIncarnation(ctx: ConsumerContext): Promise<FeedOutcome> {
  const { pipe, workload, signal } = ctx;
  let position = await readPosition(ctx.positions, pipe);
  const observed = await workload.driver.inspect(workload.id);
  if (observed?.state === 'exited' && observed.startedAt === position.feeding && position.deliveredThrough !== null) {
    // Given its whole input while nobody waited for its exit (an appliance restart between).
    await settle(ctx, position, observed.exitCode);
    return 'nothing';
  }
  if (observed?.state !== 'running' || observed.startedAt === position.feeding) return 'nothing';

  // Stdin only: B's stdout may be another pipe's, read by its own producer.
  const io = await workload.driver.attach(workload.id, { stdin: true, stdout: false });
  // Which incarnation this attach reaches: B may have started again since the inspect.
  const now = await workload.driver.inspect(workload.id);
  if (now?.state !== 'running' || !now.startedAt || now.startedAt === position.feeding) {
    io.stdin.destroy();
    return 'nothing';
  }
  const incarnation = now.startedAt;
  position = { ...position, feeding: incarnation, deliveredThrough: null };
  // Before the first byte: no later feeder (this process or the next) feeds it again.
  await writePosition(ctx.positions, pipe, position);

  const fed = await feed(ctx, position, io.stdin, io.stdout, incarnation);
  position = fed.position;
  if (fed.through === null) {
    io.stdin.destroy();
    return 'interrupted';
  }
  position = { ...position, deliveredThrough: fed.through };
  await writePosition(ctx.positions, pipe, position);
  // A StdinOnce attach lasts until B stops.
  await untilEnded(io.stdout, signal);
  const end = signal.aborted ? null : await endOf(workload, incarnation, signal);
  if (!end) return 'interrupted';
  await settle(ctx, position, end.exitCode);
  return 'fed';
}

/**
 * Writes B's input to `stdin`, from the committed position or where it was trimmed, and
 * closes it after the marker; returns the marker's stream sequence (null when B stopped
 * first or feeding was stopped) and the position with the input's latest trim. Throws
 * when the stream breaks the feed rule.
 */
async function feed(ctx: ConsumerContext, from: PipePosition, stdin: Writable, attached: Readable, incarnation: string): Promise<{ through: number | null; position: PipePosition }> {
  const { pipe, signal } = ctx;
  let position = from;
  const { trimmed } = position;
  const maxBytes = (await ctx.jsm.streams.info(pipe.stream)).config.max_bytes;
  const trimAt = maxBytes > 0 ? Math.floor(maxBytes * TRIM_AT_SHARE) : Infinity;
  const consumer = await placedOrderedConsumer(ctx.js, pipe.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: trimmed ? trimmed.seq : position.committed + 1 });
  const messages = await consumer.consume({ max_messages: PREFETCH_MESSAGES });
  // Also ends a write waiting for drain: a B that exited with its stdin full never drains
  // it, and an attach of stdin alone does not close when B stops.
  const stopped = new AbortController();
  const stop = () => {
    stopped.abort();
    void messages.stop();
  };
  // B stopped or the runner stops: no more messages. An attach of stdin alone notices
  // that B stopped only at its next write, so B's state is looked at too.
  attached.once('close', stop);
  attached.resume();
  signal.addEventListener('abort', stop);
  let wrote = false;
  const liveness = setInterval(() => {
    // A write since the last look would have failed had B stopped: no need to ask Docker while bytes flow.
    if (wrote) {
      wrote = false;
      return;
    }
    ctx.workload.driver.inspect(ctx.workload.id).then((o) => {
      if (o?.state !== 'running' || o.startedAt !== incarnation) stop();
    }, () => undefined);
  }, LIVENESS_CHECK_MS);
  let state: FeedState = trimmed ? { incarnation: trimmed.incarnation, offset: trimmed.offset } : { incarnation: null, offset: 0 };
  /** Bytes of the messages taken since the head of what the stream holds of this input. */
  let held = 0;
  try {
    for await (const m of messages) {
      held += m.data.length;
      const step = feedStep(state, pipeMessageOf((name) => m.headers?.get(name) ?? ''), m.data.length);
      if (step.kind === 'skip') continue;
      if (step.kind === 'error') {
        // Its stdin stays open: a consumer that waits is better than one that ends on a partial input.
        throw new Error(`pipe ${pipe.from} -> ${pipe.to}, message ${m.seq}: ${step.reason}; incarnation ${incarnation} of the consumer is not fed further`);
      }
      if (step.kind === 'eof') {
        stdin.end();
        return { through: m.seq, position };
      }
      const part = m.data.subarray(step.from);
      if (!(await written(stdin, part, stopped.signal))) return { through: null, position };
      wrote = true;
      ctx.onWritten(part.length);
      state = step.next;
      if (held >= trimAt) {
        // The position first: a feeder after a crash between the two starts at the trim, past what the purge removes.
        position = { ...position, trimmed: { seq: m.seq, incarnation: step.next.incarnation, offset: step.next.offset } };
        await writePosition(ctx.positions, pipe, position);
        // Up to this message, which stays: the stream's newest message tells the producer where it is.
        await ctx.jsm.streams.purge(pipe.stream, { seq: m.seq });
        held = m.data.length;
        ctx.logger.info({ pipe: pipe.id, to: pipe.to, incarnation, producer: step.next.incarnation, offset: step.next.offset }, 'pipe input outgrew its stream: what was fed is purged, and a next incarnation takes it up from here');
      }
    }
    return { through: null, position };
  } finally {
    clearInterval(liveness);
    attached.off('close', stop);
    signal.removeEventListener('abort', stop);
    void messages.stop();
  }
}

/**
 * Writes `data`, waiting for drain once more than FEED_AHEAD_BYTES wait in stdin's buffer
 * (a socket's own mark, 16 KiB, would wait at every message); false when stdin closed
 * or feeding was stopped first (B stopped).
 */
async function written(stdin: Writable, data: Uint8Array, stopped: AbortSignal): Promise<boolean> {
  if (stdin.destroyed || stopped.aborted) return false;
  if (stdin.write(data) || stdin.writableLength < FEED_AHEAD_BYTES) return true;
  const ac = new AbortController();
  const signal = AbortSignal.any([ac.signal, stopped]);
  try {
    const first = await Promise.race([
      once(stdin, 'drain', { signal }).then(() => true),
      once(stdin, 'close', { signal }).then(() => false),
    ]);
    return first;
  } catch {
    return false; // an error event (the attach broke), or feeding was stopped
  } finally {
    ac.abort();
  }
}

async function untilEnded(attached: Readable, signal: AbortSignal): Promise<void> {
  if (attached.destroyed || attached.readableEnded) return;
  await once(attached, 'close', { signal }).catch(() => undefined);
}

/** Commits the delivered input when its incarnation exited with 0; otherwise the next incarnation gets it again. */
async function settle(ctx: ConsumerContext, position: PipePosition, exitCode: number | null): Promise<void> {
  const { pipe } = ctx;
  if (exitCode !== 0 || position.deliveredThrough === null) {
    await writePosition(ctx.positions, pipe, { ...position, deliveredThrough: null });
    ctx.logger.info({ pipe: pipe.id, to: pipe.to, incarnation: position.feeding, exitCode }, 'pipe consumer did not finish its input; the next incarnation gets it again');
    return;
  }
  const committed = position.deliveredThrough;
  await writePosition(ctx.positions, pipe, { committed, feeding: position.feeding, deliveredThrough: null, trimmed: null });
  // What is committed is never read again; its marker stays, so the producer knows that incarnation is done.
  await ctx.jsm.streams.purge(pipe.stream, { seq: committed });
  ctx.logger.info({ pipe: pipe.id, to: pipe.to, incarnation: position.feeding, committed }, 'pipe input committed');
}
