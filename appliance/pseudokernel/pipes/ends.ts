// Pipes of the pseudokernel: `pipes: [{ from: A.stdout, to: B.stdin }]` joins A's stdout
// to B's stdin through a NATS JetStream stream, byte-exact and in order, whichever node
// each end runs on. This file is the pure part of running them (the message headers, the
// producer's and feeder's rules); producer.ts, consumer.ts and runner.ts do the I/O.
//
// Semantics (decided):
// - Identity: blueprints/pipes.ts (which ends run here, the pipe's id and stream).
// - Producer (node of A): reads A's stdout through the driver's attach from the first
//   byte of A's incarnation: the Docker driver attaches before it starts a workload
//   whose stdout is piped, exactly; an incarnation that started without (the appliance
//   restarted meanwhile) is replayed from the container log, best effort where log and
//   live stream meet. The libvirt driver holds a VM's stdout port from the domain's
//   start likewise; a VM's incarnation that started without it is not replayed (the
//   attach is refused until its next start). It publishes chunks of at most 256 KiB with the message id
//   `<A's startedAt>:<byte offset>`: a re-attach that replays bytes is de-duplicated by
//   the stream, and the producer skips what the stream already holds. When A's stdout
//   ends (A exited) it publishes the end-of-stream marker (header Zone-Pipe-Eof, the
//   incarnation's byte count and exit code), id `<startedAt>:eof`. Every incarnation
//   of A is one input: its bytes, then its marker, as a shell pipe gives EOF however
//   the writer ended. A full stream (max bytes, discard new) holds A back. Messages go
//   out through a window of unacknowledged ones, each expecting the stream's last
//   sequence to be the one before it, so the stream never has a gap (window.ts).
// - Consumer (node of B): a durable position per pipe (the stream sequence of the last
//   committed marker, in a KV bucket). Each incarnation of B gets on its stdin the
//   messages after the committed position, up to and including the next marker, then
//   EOF (B's container has StdinOnce for that). The position is committed only when an
//   incarnation was given everything up to the marker and exits with code 0; one that
//   dies before (killed, crashed) leaves it where it was, so the next incarnation gets
//   its whole input again (what makes `sort` exact when killed in the middle). Within
//   one incarnation's stdin there is never a gap or a repeated byte: one feeder per
//   incarnation, offsets checked, writes wait for drain. Committed messages are purged
//   (but the last marker, which tells the producer that incarnation is done). An input
//   that outgrows the stream (three quarters of its max bytes taken by the feeder: a
//   consumer that runs as long as its producer) is trimmed as it is fed: the position
//   records the last message written and the input's offset through it, the messages
//   before it are purged, and a later incarnation of B takes the input up there, not at
//   its start. A full stream would otherwise hold A back while B waits for EOF.

/** The KV bucket of the consumers' committed positions. */
export const PIPE_POSITIONS = 'zone-pipe-positions';
/** A message carries at most this many bytes of a stdout. */
export const PIPE_CHUNK_BYTES = 256 * 1024;
/** Headers of a pipe's messages. */
export const PIPE_HEADERS = {
  /** The producer incarnation (A's startedAt) the bytes come from. */
  incarnation: 'Zone-Pipe-Incarnation',
  /** The byte offset of the message's first byte within its incarnation; on the marker, the incarnation's byte count. */
  offset: 'Zone-Pipe-Offset',
  /** Present on the end-of-stream marker: A's exit code, or `unknown`. */
  eof: 'Zone-Pipe-Eof',
} as const;

/** What a message of a pipe's stream says, from its headers; null when they are not a pipe's. */
export type PipeMessage =
  | { kind: 'data'; incarnation: string; offset: number }
  | { kind: 'eof'; incarnation: string; offset: number; exitCode: number | null };

export function pipeMessageOf(get: (header: string) => string): PipeMessage | null {
  const incarnation = get(PIPE_HEADERS.incarnation);
  const offsetText = get(PIPE_HEADERS.offset);
  const offset = Number(offsetText);
  if (!incarnation || !/^\d{1,16}$/.test(offsetText) || !Number.isSafeInteger(offset)) return null;
  const eof = get(PIPE_HEADERS.eof);
  if (!eof) return { kind: 'data', incarnation, offset };
  const code = Number(eof);
  return { kind: 'eof', incarnation, offset, exitCode: eof !== 'unknown' && Number.isInteger(code) ? code : null };
}

/** The JetStream message id of a chunk, or of the marker (`offset` null). */
export function pipeMessageId(incarnation: string, offset: number | null): string {
  return `${incarnation}:${offset === null ? 'eof' : offset}`;
}

/** The newest message of a pipe's stream: what it holds of the producer's latest incarnation. */
export interface PipeTail {
  message: PipeMessage;
  /** Its payload length. */
  bytes: number;
}

/**
 * Where the producer takes up `incarnation`: `done` when the stream holds its marker;
 * else the byte offset to publish from, and the marker an earlier incarnation still
 * lacks (its producer stopped before its end), to publish first so inputs stay apart.
 */
export type Resume =
  | { kind: 'done' }
  | { kind: 'from'; offset: number; closeOut: { incarnation: string; offset: number } | null };

export function resumeFrom(tail: PipeTail | null, incarnation: string): Resume {
  if (!tail) return { kind: 'from', offset: 0, closeOut: null };
  const { message, bytes } = tail;
  if (message.incarnation === incarnation) {
    return message.kind === 'eof' ? { kind: 'done' } : { kind: 'from', offset: message.offset + bytes, closeOut: null };
  }
  const closeOut = message.kind === 'data' ? { incarnation: message.incarnation, offset: message.offset + bytes } : null;
  return { kind: 'from', offset: 0, closeOut };
}

/** What the feeder of one consumer incarnation has written: of which producer incarnation, how many bytes. */
export interface FeedState {
  incarnation: string | null;
  offset: number;
}

/** What to do with the next message: write its bytes from `from` on, skip it (already written), or end stdin. */
export type FeedStep =
  | { kind: 'write'; from: number; next: FeedState & { incarnation: string } }
  | { kind: 'skip' }
  | { kind: 'eof' }
  | { kind: 'error'; reason: string };

/**
 * The feeder's rule, so that one incarnation's stdin never has a gap or a repeated byte:
 * an input starts at offset 0 of a producer incarnation and ends with that incarnation's
 * marker, whose offset is the byte count written.
 */
export function feedStep(state: FeedState, message: PipeMessage | null, bytes: number): FeedStep {
  if (!message) return { kind: 'error', reason: 'a message without the pipe headers (Zone-Pipe-Incarnation, Zone-Pipe-Offset)' };
  const current = state.incarnation ?? message.incarnation;
  if (message.incarnation !== current) {
    return { kind: 'error', reason: `producer incarnation ${current} ended without its marker after ${state.offset} bytes (next: ${message.incarnation})` };
  }
  if (message.kind === 'eof') {
    if (message.offset === state.offset) return { kind: 'eof' };
    return { kind: 'error', reason: `the marker of producer incarnation ${current} says ${message.offset} bytes; ${state.offset} were given` };
  }
  if (message.offset > state.offset) {
    return { kind: 'error', reason: `bytes ${state.offset}..${message.offset} of producer incarnation ${current} are missing from the stream` };
  }
  if (message.offset + bytes <= state.offset) return { kind: 'skip' };
  return { kind: 'write', from: state.offset - message.offset, next: { incarnation: current, offset: message.offset + bytes } };
}
