// The producer end of a pipe (node of A): one incarnation of A's stdout into the pipe's
// stream, from where the stream stopped, then the end-of-stream marker. Semantics at the
// top of pipes.ts.
import { setTimeout as delay } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { headers } from '@nats-io/transport-node';
import { PIPE_CHUNK_BYTES, PIPE_HEADERS, pipeMessageId, resumeFrom } from './ends.ts';
import { pipeTail } from './stream.ts';
import { endOf, type PipeEndContext } from './workload.ts';

export interface ProducerContext extends PipeEndContext {
  /** Payload bytes published, added up. */
  onPublished(bytes: number): void;
}

/**
 * - `relayed`: an incarnation was published through its marker (look again at once: A may
 *   already run again);
 * - `nothing`: the stream holds all of A's current incarnation, or A has not started;
 * - `interrupted`: the stdout ended while A still runs (the attach broke) or the relay was stopped.
 */
export type RelayOutcome = 'relayed' | 'nothing' | 'interrupted';

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

/** Relays A's current incarnation if the stream does not hold all of it. */
export async function relayIncarnation(ctx: ProducerContext): Promise<RelayOutcome> {
  const { pipe, workload, signal } = ctx;
  const observed = await workload.driver.inspect(workload.id);
  if (!observed?.startedAt) return 'nothing';
  const tail = await pipeTail(ctx.jsm, pipe);
  if (resumeFrom(tail, observed.startedAt).kind === 'done') return 'nothing';

  const io = await workload.driver.attach(workload.id, { stdin: false, stdout: true, replay: true });
  const incarnation = io.startedAt ?? observed.startedAt;
  const resume = resumeFrom(tail, incarnation);
  if (resume.kind === 'done') {
    io.stdout.destroy();
    return 'nothing';
  }
  if (resume.closeOut) await publishEof(ctx, resume.closeOut.incarnation, resume.closeOut.offset, null);
  if (!io.exact) ctx.logger.warn({ pipe: pipe.id, from: pipe.from, incarnation }, 'stdout not held since the start: its first bytes come from the container log (best effort)');

  const stop = () => io.stdout.destroy();
  signal.addEventListener('abort', stop);
  let read = 0;
  try {
    for await (const chunk of coalesced(io.stdout)) {
      const skip = Math.max(0, resume.offset - read);
      for (let at = skip; at < chunk.length; at += PIPE_CHUNK_BYTES) {
        const part = chunk.subarray(at, at + PIPE_CHUNK_BYTES);
        await publishData(ctx, incarnation, read + at, part);
        ctx.onPublished(part.length);
      }
      read += chunk.length;
    }
  } catch (err) {
    if (signal.aborted) return 'interrupted';
    // The attach broke (a cut frame, dockerd gone): whether A ended says what comes next.
    ctx.logger.warn({ pipe: pipe.id, from: pipe.from, incarnation, err }, 'stdout of the pipe\'s producer broke off');
  } finally {
    signal.removeEventListener('abort', stop);
  }
  if (signal.aborted) return 'interrupted';
  const end = await endOf(workload, incarnation, signal);
  if (!end) return 'interrupted';
  await publishEof(ctx, incarnation, Math.max(read, resume.offset), end.exitCode);
  return 'relayed';
}

/** Bytes of an incarnation's stdout at `offset`; with `eof` (A's exit code, null when unknown), its end-of-stream marker. */
async function publishData(ctx: ProducerContext, incarnation: string, offset: number, data: Uint8Array, eof?: { exitCode: number | null }): Promise<void> {
  const h = headers();
  h.set(PIPE_HEADERS.incarnation, incarnation);
  h.set(PIPE_HEADERS.offset, String(offset));
  if (eof) h.set(PIPE_HEADERS.eof, eof.exitCode === null ? 'unknown' : String(eof.exitCode));
  await publishRetrying(ctx, data, h, pipeMessageId(incarnation, eof ? null : offset));
}

async function publishEof(ctx: ProducerContext, incarnation: string, offset: number, exitCode: number | null): Promise<void> {
  await publishData(ctx, incarnation, offset, new Uint8Array(0), { exitCode });
  ctx.logger.info({ pipe: ctx.pipe.id, from: ctx.pipe.from, incarnation, bytes: offset, exitCode }, 'pipe input ended');
}

/**
 * Publishes until the stream takes it: a full stream (discard: new) or an absent server
 * holds the producer, and so A's stdout, back. The message id makes a retry of a publish
 * that did land a duplicate the stream drops.
 */
async function publishRetrying(ctx: ProducerContext, data: Uint8Array, h: ReturnType<typeof headers>, msgID: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.js.publish(ctx.pipe.subject, data, { msgID, headers: h });
      return;
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const waitMs = Math.min(RETRY_FIRST_MS * 2 ** Math.min(attempt, 16), RETRY_MAX_MS);
      if (attempt === 0 || waitMs === RETRY_MAX_MS) ctx.logger.warn({ pipe: ctx.pipe.id, msgID, attempt, err }, 'publishing to the pipe stream failed; retrying');
      await delay(waitMs, undefined, { signal: ctx.signal }).catch(() => undefined);
    }
  }
}

/** The stdout's chunks, joining those already buffered (fewer, larger messages), never waiting for more. */
export async function* coalesced(stdout: Readable): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdout as AsyncIterable<Buffer>) {
    pending.push(chunk);
    size += chunk.length;
    if (stdout.readableLength > 0 && size < PIPE_CHUNK_BYTES) continue;
    yield pending.length === 1 ? chunk : Buffer.concat(pending, size);
    pending = [];
    size = 0;
  }
  if (size > 0) yield Buffer.concat(pending, size);
}
