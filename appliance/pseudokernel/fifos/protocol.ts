// FIFOs across nodes, the pure part: a FIFO's identity on NATS, the relays' messages,
// and the helper's report lines. The I/O is in waiters.ts (who waits in an open),
// relay.ts (announcing and joining) and session.ts (the bytes).
//
// Semantics (decided):
// - A FIFO of `/zone/fs` is a kernel FIFO on each node (the FUSE server never sees its
//   opens, reads or writes). Openers on one node meet in that node's kernel as on any
//   machine; the relay only joins openers that wait for a partner no node-local opener gives.
// - A reader waiting on node B and a writer waiting on node A are joined: B's relay opens
//   B's FIFO for writing (the reader's open returns), A's relay opens A's for reading (the
//   writer's returns), and A's relay publishes what it reads to a JetStream stream (the
//   blueprint pipes' streams, headers and feed rule) that B's relay writes into B's FIFO.
// - The last writer on A closes: A's relay reads EOF and publishes the end marker; B's relay
//   closes its write end, so B's readers read EOF once they drained the pipe.
// - The last reader on B closes: B's relay's next write fails (EPIPE) and it tells A's relay,
//   which closes its read end: A's writers get EPIPE (SIGPIPE) on their next write.
// - Bytes arrive in order and exactly (offsets checked by the pipes' feed rule).
// - Joins happen between waiting opens only: an opener that comes while the other side is
//   already open on its own node (no longer waiting) waits on for a waiting partner.
import { createHash } from 'node:crypto';

/** Where one owner's FIFO at one path is announced. */
export interface FifoIdentity {
  owner: string;
  /** The path inside the owner's `/zone/fs`. */
  path: string;
  /** 32 hex of sha256(owner, path). */
  id: string;
  /** Core NATS subject of announcements (who waits, where). */
  subject: string;
}

export function fifoIdentity(owner: string, path: string): FifoIdentity {
  // Newline-separated: neither field holds one.
  const id = createHash('sha256').update(`zone-fifo-v1\n${owner}\n${path}`).digest('hex').slice(0, 32);
  return { owner, path, id, subject: `zone.fifo.${id}` };
}

/** The subject on which one node's relay takes join requests for a FIFO. */
export function joinSubject(fifo: FifoIdentity, node: string): string {
  return `${fifo.subject}.join.${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
}

/** The subject on which a session's sink tells its source that no reader is left. */
export function goneSubject(session: string): string {
  return `zone.fifo.gone.${session}`;
}

export type Direction = 'read' | 'write';

/** A relay's message on the FIFO's subject: openers wait on `node`, to `direction`. */
export interface Announcement {
  node: string;
  direction: Direction;
}

/** A source's request to a sink's node: join your waiting readers to session `session`, whose bytes are on `stream`/`subject`. */
export interface JoinRequest {
  session: string;
  stream: string;
  subject: string;
}

const SESSION = /^[0-9a-f]{32}$/;
const NODE = /^[A-Za-z0-9._-]{1,128}$/;

function parsed(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

export function announcementOf(text: string): Announcement | null {
  const v = parsed(text);
  if (!v || typeof v.node !== 'string' || !NODE.test(v.node) || (v.direction !== 'read' && v.direction !== 'write')) return null;
  return { node: v.node, direction: v.direction };
}

export function joinRequestOf(text: string): JoinRequest | null {
  const v = parsed(text);
  if (!v || typeof v.session !== 'string' || !SESSION.test(v.session)) return null;
  if (v.stream !== sessionStream(v.session) || v.subject !== sessionSubject(v.session)) return null;
  return { session: v.session, stream: v.stream, subject: v.subject };
}

export function sessionStream(session: string): string {
  return `ZONE_FIFO_${session}`;
}

export function sessionSubject(session: string): string {
  return `zone.fifo.data.${session}`;
}

/** A line of the fifo-waiters helper. */
export type WaiterReport =
  | { kind: 'wait'; tid: number; dev: number; direction: Direction; path: string }
  | { kind: 'done'; tid: number };

export function waiterReportOf(line: string): WaiterReport | null {
  const wait = /^wait (\d{1,10}) (\d{1,20}) ([RW]) (\/\S*)$/.exec(line);
  if (wait) {
    const dev = Number(wait[2]);
    if (!Number.isSafeInteger(dev)) return null;
    return { kind: 'wait', tid: Number(wait[1]), dev, direction: wait[3] === 'R' ? 'read' : 'write', path: wait[4]! };
  }
  const done = /^done (\d{1,10})$/.exec(line);
  return done ? { kind: 'done', tid: Number(done[1]) } : null;
}

/** The path inside `/zone/fs` of a path inside a /zone mount's file system; null outside `fs/`. */
export function gridPathOf(mountPath: string): string | null {
  if (mountPath === '/fs') return null;
  if (!mountPath.startsWith('/fs/')) return null;
  return mountPath.slice(3);
}
