// A pipe's state on JetStream, shared by its two ends: the stream of its bytes (created
// by whichever end comes first, on either node), its newest message, and the
// consumer's durable position in the PIPE_POSITIONS bucket.
import {
  DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import type { PipeIdentity } from '../../../blueprints/pipes.ts';
import { PIPE_POSITIONS, pipeMessageOf, type PipeTail } from './ends.ts';

/** What a stream may hold before the producer waits (discard: new): the pipe's buffer between A and B. */
const PIPE_MAX_BYTES = 1024 ** 3;
/** The window in which the stream drops a message id it has seen: a re-attach's replay within it costs nothing. */
const DUPLICATE_WINDOW_MS = 2 * 60_000;

/** Makes the pipe's stream unless it exists; `maxBytes`, its buffer, is smaller only in tests. */
export async function ensurePipeStream(jsm: JetStreamManager, pipe: PipeIdentity, maxBytes = PIPE_MAX_BYTES): Promise<void> {
  try {
    await jsm.streams.info(pipe.stream);
    return;
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
  }
  await jsm.streams.add({
    name: pipe.stream,
    subjects: [pipe.subject],
    description: `zone pipe ${pipe.from} -> ${pipe.to}`,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    max_bytes: maxBytes,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: 1,
  }).catch(async (err: unknown) => {
    // Created meanwhile by the other end, with its own limits: that one is used.
    if (!(await jsm.streams.info(pipe.stream).then(() => true, () => false))) throw err;
  });
}

/** The stream's newest message, or null when it holds none (new, or everything committed and purged). */
export async function pipeTail(jsm: JetStreamManager, pipe: PipeIdentity): Promise<PipeTail | null> {
  const stored = await jsm.streams.getMessage(pipe.stream, { last_by_subj: pipe.subject });
  if (!stored) return null;
  const message = pipeMessageOf((name) => stored.header?.get(name) ?? '');
  if (!message) throw new Error(`the newest message of pipe stream ${pipe.stream} (seq ${stored.seq}) has no pipe headers: the stream is not only this pipe's`);
  return { message, bytes: stored.data.length };
}

/** The sequence of the stream's last message ever (purged or not): what its next message follows. */
export async function pipeLastSequence(jsm: JetStreamManager, pipe: PipeIdentity): Promise<number> {
  return (await jsm.streams.info(pipe.stream)).state.last_seq;
}

/** The consumer's durable state of one pipe. */
export interface PipePosition {
  /** Stream sequence of the last committed marker; 0 before the first commit. */
  committed: number;
  /** The consumer incarnation (B's startedAt) whose stdin was last fed: one feeder per incarnation, across appliance restarts too. */
  feeding: string | null;
  /** That incarnation was given its whole input, through this marker: it commits if it exits with code 0. */
  deliveredThrough: number | null;
  /**
   * The input being fed outgrew the stream, which was purged up to this message while it
   * was fed (consumer.ts): a later feeder starts here, at this byte offset of this
   * producer incarnation, not at the input's start. Null until then, and after a commit.
   */
  trimmed: PipeTrim | null;
}

/** Where a trimmed input is taken up: the message kept at the head of the stream, and the input's bytes through it. */
export interface PipeTrim {
  seq: number;
  incarnation: string;
  offset: number;
}

export const START_POSITION: PipePosition = { committed: 0, feeding: null, deliveredThrough: null, trimmed: null };

export async function readPosition(kv: KV, pipe: PipeIdentity): Promise<PipePosition> {
  const entry = await kv.get(pipe.positionKey);
  if (!entry || entry.operation !== 'PUT') return START_POSITION;
  return parsePosition(entry.string(), pipe);
}

export async function writePosition(kv: KV, pipe: PipeIdentity, position: PipePosition): Promise<void> {
  await kv.put(pipe.positionKey, JSON.stringify(position));
}

export function parsePosition(text: string, pipe: PipeIdentity): PipePosition {
  const value: unknown = JSON.parse(text);
  const p = value as Partial<PipePosition> | null;
  const valid = typeof p === 'object' && p !== null
    && Number.isSafeInteger(p.committed) && (p.committed ?? -1) >= 0
    && (p.feeding === null || typeof p.feeding === 'string')
    && (p.deliveredThrough === null || Number.isSafeInteger(p.deliveredThrough))
    // Absent in positions written before inputs were trimmed.
    && (p.trimmed === undefined || p.trimmed === null || isTrim(p.trimmed));
  if (!valid) throw new Error(`the position of pipe ${pipe.from} -> ${pipe.to} (key ${pipe.positionKey} of bucket ${PIPE_POSITIONS}) is not {committed, feeding, deliveredThrough, trimmed}: ${text.slice(0, 200)}`);
  return { committed: p.committed ?? 0, feeding: p.feeding ?? null, deliveredThrough: p.deliveredThrough ?? null, trimmed: p.trimmed ?? null };
}

function isTrim(value: unknown): value is PipeTrim {
  const t = value as Partial<PipeTrim>;
  return typeof t === 'object' && t !== null && Number.isSafeInteger(t.seq) && (t.seq ?? 0) > 0
    && typeof t.incarnation === 'string' && t.incarnation !== '' && Number.isSafeInteger(t.offset) && (t.offset ?? -1) >= 0;
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}
