// Pipes of the pseudokernel: `pipes: [{ from: A.stdout, to: B.stdin }]` joins A's stdout
// to B's stdin through a NATS JetStream stream, byte-exact and in order, whichever node
// each end runs on. This file is the pure part (which ends run here, their names on
// JetStream, the message headers); pipes-producer.ts, pipes-consumer.ts and
// pipes-runner.ts do the I/O.
//
// Semantics (decided):
// - Identity: a pipe is (owner, from, to) with both ends fully qualified as
//   NODE/BLUEPRINT/WORKLOAD.stream (a local end takes this node's id and its blueprint's
//   name). Its stream, subject and position key derive from a hash of that, so both
//   nodes of a cross-node pipe (each declares it in its own blueprint, with one local
//   end) find the same stream. Each node runs the ends that are local to it.
// - Producer (node of A): reads A's stdout through the driver's attach from the first
//   byte of A's incarnation: the Docker driver attaches before it starts a workload
//   whose stdout is piped, exactly; an incarnation that started without (the appliance
//   restarted meanwhile) is replayed from the container log, best effort where log and
//   live stream meet. It publishes chunks of at most 64 KiB with the message id
//   `<A's startedAt>:<byte offset>`: a re-attach that replays bytes is de-duplicated by
//   the stream, and the producer skips what the stream already holds. When A's stdout
//   ends (A exited) it publishes the end-of-stream marker (header Zone-Pipe-Eof, the
//   incarnation's byte count and exit code), id `<startedAt>:eof`. Every incarnation
//   of A is one input: its bytes, then its marker, as a shell pipe gives EOF however
//   the writer ended. A full stream (max bytes, discard new) holds A back.
// - Consumer (node of B): a durable position per pipe (the stream sequence of the last
//   committed marker, in a KV bucket). Each incarnation of B gets on its stdin the
//   messages after the committed position, up to and including the next marker, then
//   EOF (B's container has StdinOnce for that). The position is committed only when an
//   incarnation was given everything up to the marker and exits with code 0; one that
//   dies before (killed, crashed) leaves it where it was, so the next incarnation gets
//   its whole input again (what makes `sort` exact when killed in the middle). Within
//   one incarnation's stdin there is never a gap or a repeated byte: one feeder per
//   incarnation, offsets checked, writes wait for drain. Committed messages are purged
//   (but the last marker, which tells the producer that incarnation is done).
import { createHash } from 'node:crypto';
import { PIPE_END_PATTERN, type Pipe } from '../../../blueprints/schema.ts';

export type PipeStream = 'stdout' | 'stdin';

export interface PipeEndpoint {
  node: string;
  blueprint: string;
  workload: string;
  stream: PipeStream;
}

/** Where a pipe lives on JetStream. */
export interface PipeIdentity {
  owner: string;
  /** Fully qualified: NODE/BLUEPRINT/WORKLOAD.stdout. */
  from: string;
  /** Fully qualified: NODE/BLUEPRINT/WORKLOAD.stdin. */
  to: string;
  /** 32 hex of sha256(owner, from, to). */
  id: string;
  /** The JetStream stream holding the pipe's bytes. */
  stream: string;
  subject: string;
  /** The consumer's committed position, in the PIPE_POSITIONS bucket. */
  positionKey: string;
}

/** One end of a pipe that runs on this node: `produce` reads the local workload's stdout, `consume` writes its stdin. */
export interface LocalPipeEnd extends PipeIdentity {
  role: 'produce' | 'consume';
  blueprint: string;
  workload: string;
}

/** The blueprint fields pipe resolution reads. */
export interface PipedBlueprint {
  name: string;
  owner: string;
  pipes?: readonly Pipe[];
}

/** The KV bucket of the consumers' committed positions. */
export const PIPE_POSITIONS = 'zone-pipe-positions';
/** A message carries at most this many bytes of a stdout. */
export const PIPE_CHUNK_BYTES = 64 * 1024;
/** Headers of a pipe's messages. */
export const PIPE_HEADERS = {
  /** The producer incarnation (A's startedAt) the bytes come from. */
  incarnation: 'Zone-Pipe-Incarnation',
  /** The byte offset of the message's first byte within its incarnation; on the marker, the incarnation's byte count. */
  offset: 'Zone-Pipe-Offset',
  /** Present on the end-of-stream marker: A's exit code, or `unknown`. */
  eof: 'Zone-Pipe-Eof',
} as const;

const END_PATTERN = new RegExp(PIPE_END_PATTERN);

/** A blueprint's pipe end, qualified: a bare `WORKLOAD.stream` belongs to `node` and `blueprint`. */
export function parsePipeEnd(end: string, node: string, blueprint: string): PipeEndpoint {
  const m = END_PATTERN.exec(end);
  if (!m) throw new Error(`pipe end "${end}" is not WORKLOAD.stdout|stdin or NODE/BLUEPRINT/WORKLOAD.stdout|stdin`);
  return { node: m[2] ?? node, blueprint: m[3] ?? blueprint, workload: m[4] ?? '', stream: m[5] as PipeStream };
}

export function qualifiedEnd(e: PipeEndpoint): string {
  return `${e.node}/${e.blueprint}/${e.workload}.${e.stream}`;
}

export function pipeIdentity(owner: string, from: string, to: string): PipeIdentity {
  // Newline-separated: no field can hold one, so two different triples never hash alike.
  const id = createHash('sha256').update(`zone-pipe-v1\n${owner}\n${from}\n${to}`).digest('hex').slice(0, 32);
  return { owner, from, to, id, stream: `ZONE_PIPE_${id}`, subject: `zone.pipe.${id}`, positionKey: id };
}

/**
 * The ends of `blueprint`'s pipes that run on `node`: a same-node pipe has two, a
 * cross-node pipe one. An end naming this node and this blueprint is local too. A pipe
 * declared twice gives its ends once.
 */
export function localPipeEnds(node: string, blueprint: PipedBlueprint): LocalPipeEnd[] {
  const ends = new Map<string, LocalPipeEnd>();
  for (const pipe of blueprint.pipes ?? []) {
    const from = parsePipeEnd(pipe.from, node, blueprint.name);
    const to = parsePipeEnd(pipe.to, node, blueprint.name);
    const identity = pipeIdentity(blueprint.owner, qualifiedEnd(from), qualifiedEnd(to));
    for (const [role, end] of [['produce', from], ['consume', to]] as const) {
      if (end.node !== node || end.blueprint !== blueprint.name) continue;
      ends.set(`${role}:${identity.id}`, { ...identity, role, blueprint: blueprint.name, workload: end.workload });
    }
  }
  return [...ends.values()];
}

/** The normalised workload fields that say which of `workload`'s streams are piped (absent when not). */
export function pipedStreams(node: string, blueprint: PipedBlueprint, workload: string): { stdin?: 'pipe'; stdout?: 'pipe' } {
  const ends = localPipeEnds(node, blueprint).filter((e) => e.workload === workload);
  return {
    ...(ends.some((e) => e.role === 'consume') ? { stdin: 'pipe' as const } : {}),
    ...(ends.some((e) => e.role === 'produce') ? { stdout: 'pipe' as const } : {}),
  };
}

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
  | { kind: 'write'; from: number; next: FeedState }
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
