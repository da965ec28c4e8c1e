// The producer end of a pipe (node of A): one incarnation of A's stdout into the pipe's
// stream, from where the stream stopped, then the end-of-stream marker. Semantics at the
// top of ends.ts.
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { headers } from '@nats-io/transport-node';
import { PIPE_CHUNK_BYTES, PIPE_HEADERS, pipeMessageId, resumeFrom } from './ends.ts';
import { pipeLastSequence, pipeTail } from './stream.ts';
import { StdoutChunks } from './gather.ts';
import { PipeWindowError, PublishWindow, type OutgoingMessage } from './window.ts';
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

/** How long a small chunk waits for more while messages are in flight, and below what size it does. */
const NAGLE_MS = 2;
const NAGLE_BELOW_BYTES = 64 * 1024;
/** What the producer holds of A's stdout before Docker's attach waits (and A with it). */
const STDOUT_HELD_BYTES = 1024 * 1024;

/** Relays A's current incarnation if the stream does not hold all of it. */
export async function relayIncarnation(ctx: ProducerContext): Promise<RelayOutcome> {
  const { pipe, workload } = ctx;
  const observed = await workload.driver.inspect(workload.id);
  if (!observed?.startedAt) return 'nothing';
  const tail = await pipeTail(ctx.jsm, pipe);
  if (resumeFrom(tail, observed.startedAt).kind === 'done') return 'nothing';
  // Read with the tail, before the attach: only this producer publishes to the stream.
  const lastSequence = await pipeLastSequence(ctx.jsm, pipe);

  const io = await workload.driver.attach(workload.id, { stdin: false, stdout: true, replay: true });
  const incarnation = io.startedAt ?? observed.startedAt;
  const resume = resumeFrom(tail, incarnation);
  if (resume.kind === 'done') {
    io.stdout.destroy();
    return 'nothing';
  }
  if (!io.exact) ctx.logger.warn({ pipe: pipe.id, from: pipe.from, incarnation }, 'stdout not held since the start: its first bytes come from the container log (best effort)');

  const window = new PublishWindow({ ...ctx, onStored: (m) => ctx.onPublished(m.data.length) }, lastSequence);
  try {
    return await relayStdout(ctx, window, io.stdout, incarnation, resume);
  } finally {
    // What is in flight lands or fails before a next relay reads where the stream ends.
    await window.settled();
  }
}

/** Publishes the incarnation's stdout from `resume` on, then its marker once A has ended. */
async function relayStdout(ctx: ProducerContext, window: PublishWindow, stdout: Readable, incarnation: string, resume: { offset: number; closeOut: { incarnation: string; offset: number } | null }): Promise<RelayOutcome> {
  const { pipe, workload, signal } = ctx;
  const stop = () => stdout.destroy();
  signal.addEventListener('abort', stop);
  if (resume.closeOut) await sendEof(ctx, window, resume.closeOut.incarnation, resume.closeOut.offset, null);
  const chunks = new StdoutChunks(stdout, STDOUT_HELD_BYTES);
  let read = 0;
  try {
    // Each message takes what the stdout holds, up to PIPE_CHUNK_BYTES: while the window
    // is full the bytes gather, so messages grow under load and a lone line still goes
    // out at once. Nagle's rule: while messages are in flight, a small rest waits
    // NAGLE_MS for more (less once NAGLE_BELOW_BYTES are there).
    while (await chunks.next()) {
      if (window.unacknowledged > 0 && chunks.available < NAGLE_BELOW_BYTES) await chunks.next(NAGLE_BELOW_BYTES, NAGLE_MS);
      const data = chunks.take(PIPE_CHUNK_BYTES);
      const skip = Math.max(0, resume.offset - read);
      if (skip < data.length) await window.send(dataMessage(incarnation, read + skip, skip === 0 ? data : data.subarray(skip)));
      read += data.length;
    }
  } catch (err) {
    if (signal.aborted) return 'interrupted';
    if (err instanceof PipeWindowError) throw err;
    // The attach broke (a cut frame, dockerd gone): whether A ended says what comes next.
    ctx.logger.warn({ pipe: pipe.id, from: pipe.from, incarnation, err }, 'stdout of the pipe\'s producer broke off');
  } finally {
    signal.removeEventListener('abort', stop);
    // Left before its end (the window failed): the attach goes, or A would wait on a full stdout.
    if (!stdout.readableEnded) stdout.destroy();
  }
  if (signal.aborted) return 'interrupted';
  const end = await endOf(workload, incarnation, signal);
  if (!end) return 'interrupted';
  await sendEof(ctx, window, incarnation, Math.max(read, resume.offset), end.exitCode);
  await window.flush().catch((err: unknown) => {
    if (!signal.aborted) throw err;
  });
  return signal.aborted ? 'interrupted' : 'relayed';
}

/**
 * Nagle's rule with a short deadline: while earlier messages are unacknowledged (the
 * stdout streams), a small chunk waits NAGLE_MS for what follows it, so a stream of
 * Docker's frames (32 KiB at most) becomes fewer, larger messages; a chunk that comes
 * alone (a line now and then) goes out at once.
 */
export async function gathered(chunk: Buffer, stdout: Readable, streaming: boolean): Promise<Buffer> {
  if (!streaming || chunk.length >= NAGLE_BELOW_BYTES) return chunk;
  await delay(NAGLE_MS);
  const more = stdout.read() as Buffer | null;
  return more ? Buffer.concat([chunk, more]) : chunk;
}

/** Bytes of an incarnation's stdout at `offset`; with `eof` (A's exit code, null when unknown), its end-of-stream marker. */
function dataMessage(incarnation: string, offset: number, data: Uint8Array, eof?: { exitCode: number | null }): OutgoingMessage {
  const h = headers();
  h.set(PIPE_HEADERS.incarnation, incarnation);
  h.set(PIPE_HEADERS.offset, String(offset));
  if (eof) h.set(PIPE_HEADERS.eof, eof.exitCode === null ? 'unknown' : String(eof.exitCode));
  return { data, headers: h, msgID: pipeMessageId(incarnation, eof ? null : offset) };
}

async function sendEof(ctx: ProducerContext, window: PublishWindow, incarnation: string, offset: number, exitCode: number | null): Promise<void> {
  await window.send(dataMessage(incarnation, offset, new Uint8Array(0), { exitCode }));
  ctx.logger.info({ pipe: ctx.pipe.id, from: ctx.pipe.from, incarnation, bytes: offset, exitCode }, 'pipe input ended');
}
