// The bytes of one join between a FIFO's writers on one place and its readers on
// another: the source reads the writers' side of the FIFO and publishes to a JetStream
// stream made like a blueprint pipe's (pipes/stream.ts, the pipes' headers) through the
// pipes' publish window (the source is the stream's only publisher, as a pipe's producer
// is), the sink writes what the stream holds into the readers' side, checked by the
// pipes' feed rule.
import { close as closeCb, open as openCb, constants } from 'node:fs';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readlink, realpath } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { PipeIdentity } from '../../../blueprints/pipes.ts';
import { feedStep, PIPE_CHUNK_BYTES, PIPE_HEADERS, pipeMessageId, pipeMessageOf, type FeedState } from '../pipes/ends.ts';
import { gathered } from '../pipes/producer.ts';
import { PublishWindow, type OutgoingMessage } from '../pipes/window.ts';
import { retryingStreamNotFound, retryingTimeouts } from '../nats/jetstream-retry.ts';
import { placedOrderedConsumer } from '../nats/placed-consumer.ts';
import { goneSubject, sessionStream, sessionSubject } from './protocol.ts';

const openFd = promisify(openCb);
const closeFd = promisify(closeCb);
/** Messages (PIPE_CHUNK_BYTES each at most) a sink fetches ahead of its readers. */
const PREFETCH_MESSAGES = 32;
/** How often a sink waiting for bytes looks whether its readers are still there. */
const READERS_PROBE_MS = 250;
/**
 * How many bytes a sink writes between purges of what it wrote: the stream is bounded
 * like a pipe's (1 GiB, new messages refused), and the source's window holds back rather
 * than fail when it is full, so a join that runs longer lets the stream drop its past.
 */
const PURGE_EVERY_BYTES = 64 * 2 ** 20;

export interface SessionContext {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  logger: Logger;
  /** Aborted when the relay stops: a source stops sending again what its stream refused. */
  signal: AbortSignal;
}

/** The stream of a session, as a pipe's identity (what ensurePipeStream takes). */
export function sessionPipe(owner: string, session: string, from: string, to: string): PipeIdentity {
  return { owner, from, to, id: session, stream: sessionStream(session), subject: sessionSubject(session), positionKey: session };
}

/** The relay's end of a FIFO: a process that holds it open and copies it to or from this process (`fifo-waiters read`, or `cat` into it). */
export interface FifoEnd {
  child: ChildProcess;
  /** What the writers wrote (a read end), or where the readers' bytes go (a write end). */
  stream: Readable | Writable;
}

/**
 * Opens `hostPath` (a FIFO) for `direction`, waking the openers that wait there for this
 * direction's partner. This process only opens without waiting (for writing that fails
 * with ENXIO when no reader is there) and closes again: a child process holds the end. Any
 * fstat of the FIFO is a FUSE request that this process's main thread answers, so it
 * can never hold such a descriptor in a libuv stream (which fstats it synchronously).
 */
export async function openFifoEnd(hostPath: string, direction: 'read' | 'write', waitersCommand: string): Promise<FifoEnd> {
  const fd = await openFd(hostPath, (direction === 'read' ? constants.O_RDONLY : constants.O_WRONLY) | constants.O_NONBLOCK);
  let held = false;
  try {
    // The read end must not wait for a writer: one that wrote and closed already left its bytes in the pipe.
    const child = direction === 'read'
      ? spawn(waitersCommand, ['read', hostPath], { stdio: ['ignore', 'pipe', 'ignore'] })
      : spawn('sh', ['-c', 'exec cat > "$1"', 'zone-fifo-end', hostPath], { stdio: ['pipe', 'ignore', 'ignore'] });
    await once(child, 'spawn');
    if (direction === 'read') {
      // Held until the child ends: a pipe whose every end closed, even for a moment, drops what it holds.
      held = true;
      child.once('exit', () => void closeFd(fd).catch(() => undefined));
    } else {
      // The child's open does not wait once this end is there; this end goes then, or the readers would never see EOF.
      await childOpened(child, hostPath);
    }
    return { child, stream: direction === 'read' ? child.stdout! : child.stdin! };
  } finally {
    if (!held) await closeFd(fd);
  }
}

/** Waits until `child` holds `hostPath` open (its /proc fd table), or has ended. */
async function childOpened(child: ChildProcess, hostPath: string): Promise<void> {
  const target = await realpath(hostPath).catch(() => hostPath);
  for (let i = 0; i < 1000 && child.exitCode === null && child.signalCode === null; i++) {
    const fds = await readdir(`/proc/${child.pid}/fd`).catch(() => []);
    for (const fd of fds) if ((await readlink(`/proc/${child.pid}/fd/${fd}`).catch(() => '')) === target) return;
    await delay(2);
  }
}

/**
 * Publishes what the writers write into `reader` (the relay's read end) until they all
 * closed (then the end marker), or until the sink says no reader is left (then the read
 * end closes, and the writers' next write fails with EPIPE). `pipe`'s stream is new.
 */
export async function runSource(ctx: SessionContext, pipe: PipeIdentity, end: FifoEnd): Promise<'eof' | 'gone'> {
  const reader = end.stream as Readable;
  const readersGone = new AbortController();
  const gone = ctx.nc.subscribe(goneSubject(pipe.id), { max: 1, callback: () => {
    readersGone.abort();
    // Its read end closes: the writers' next write fails with EPIPE.
    end.child.kill('SIGKILL');
    reader.destroy();
  } });
  const signal = AbortSignal.any([ctx.signal, readersGone.signal]);
  const window = new PublishWindow({ ...ctx, pipe, signal, onStored: () => undefined }, 0);
  let offset = 0;
  try {
    for await (const first of reader as AsyncIterable<Buffer>) {
      // As a pipe's producer gathers a stdout: fewer, larger messages while bytes stream.
      const chunk = await gathered(first, reader, window.unacknowledged > 0);
      for (let at = 0; at < chunk.length; at += PIPE_CHUNK_BYTES) {
        const part = chunk.subarray(at, at + PIPE_CHUNK_BYTES);
        await window.send(sessionMessage(pipe, offset, part, false));
        offset += part.length;
      }
    }
    if (!readersGone.signal.aborted) {
      await window.send(sessionMessage(pipe, offset, new Uint8Array(0), true));
      await window.flush();
    }
  } catch (err) {
    if (!readersGone.signal.aborted) throw err;
  } finally {
    reader.destroy();
    end.child.kill('SIGKILL');
    gone.unsubscribe();
  }
  return readersGone.signal.aborted ? 'gone' : 'eof';
}

function sessionMessage(pipe: PipeIdentity, offset: number, data: Uint8Array, eof: boolean): OutgoingMessage {
  const h = headers();
  h.set(PIPE_HEADERS.incarnation, pipe.id);
  h.set(PIPE_HEADERS.offset, String(offset));
  if (eof) h.set(PIPE_HEADERS.eof, 'unknown');
  return { data, headers: h, msgID: pipeMessageId(pipe.id, eof ? null : offset) };
}

/**
 * Writes the session's bytes into `writer` (the relay's write end) through the end
 * marker, then closes it (the readers read EOF); when the readers are gone first (EPIPE),
 * tells the source. The stream is deleted either way.
 */
export async function runSink(ctx: SessionContext, pipe: PipeIdentity, messages: ConsumerMessages, end: FifoEnd, hostPath: string): Promise<'eof' | 'gone'> {
  const writer = end.stream as Writable;
  let broken = false;
  writer.on('error', () => { broken = true; });
  // The cat ends early when the readers are gone (SIGPIPE).
  end.child.once('exit', () => writer.destroy());
  const stop = () => void messages.stop();
  writer.once('close', stop);
  // A write finds a reader gone (EPIPE); while no bytes come, a probe does.
  const probe = setInterval(() => void readersLeft(hostPath).then((left) => { if (!left) stop(); }), READERS_PROBE_MS);
  let state: FeedState = { incarnation: null, offset: 0 };
  let outcome: 'eof' | 'gone' = 'gone';
  let unpurged = 0;
  try {
    for await (const m of messages) {
      const step = feedStep(state, pipeMessageOf((name) => m.headers?.get(name) ?? ''), m.data.length);
      if (step.kind === 'skip') continue;
      if (step.kind === 'error') throw new Error(`FIFO session ${pipe.id}, message ${m.seq}: ${step.reason}`);
      if (step.kind === 'eof') {
        outcome = 'eof';
        break;
      }
      if (!(await written(writer, m.data.subarray(step.from)))) break;
      state = step.next;
      unpurged += m.data.length;
      if (unpurged >= PURGE_EVERY_BYTES) {
        unpurged = 0;
        // Up to and with this message: the readers have it. One that fails is made good by the next.
        await ctx.jsm.streams.purge(pipe.stream, { seq: m.seq + 1 }).catch((err: unknown) => ctx.logger.debug({ err, session: pipe.id }, 'fifos: purging what the readers have failed'));
      }
    }
  } finally {
    clearInterval(probe);
    writer.off('close', stop);
    void messages.stop();
  }
  if (outcome === 'eof') {
    writer.end();
    if (end.child.exitCode === null && end.child.signalCode === null) await once(end.child, 'exit');
  } else {
    writer.destroy();
    end.child.kill('SIGKILL');
    ctx.nc.publish(goneSubject(pipe.id));
    ctx.logger.debug({ session: pipe.id, broken }, 'fifos: the readers are gone; the writers get EPIPE');
  }
  await ctx.jsm.streams.delete(pipe.stream).catch(() => undefined);
  return outcome;
}

/** The session's messages from the first (before the sink opens its end: a stream without a leader yet fails the join, not the readers). */
export function sessionMessages(ctx: SessionContext, pipe: PipeIdentity): Promise<ConsumerMessages> {
  // The source made the stream, maybe through another server.
  return retryingStreamNotFound(async () => {
    const consumer = await retryingTimeouts(`the consumer of FIFO session ${pipe.id}`, () => placedOrderedConsumer(ctx.js, pipe.stream, { deliver_policy: DeliverPolicy.All }));
    return consumer.consume({ max_messages: PREFETCH_MESSAGES });
  });
}

/** Writes `data`, waiting for drain when the pipe is full; false when the write end broke (no reader left). */
async function written(writer: Writable, data: Uint8Array): Promise<boolean> {
  if (writer.destroyed) return false;
  if (writer.write(data)) return true;
  const ac = new AbortController();
  try {
    return await Promise.race([
      once(writer, 'drain', { signal: ac.signal }).then(() => true),
      once(writer, 'close', { signal: ac.signal }).then(() => false),
    ]);
  } catch {
    return false;
  } finally {
    ac.abort();
  }
}

/** Whether the FIFO at `hostPath` has a reader: an open for writing that does not wait fails with ENXIO without one. */
async function readersLeft(hostPath: string): Promise<boolean> {
  try {
    await closeFd(await openFd(hostPath, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENXIO';
  }
}
