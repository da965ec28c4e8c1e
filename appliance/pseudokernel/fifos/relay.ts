// The FIFO relay of a node: learns from the fifo-waiters helper which threads wait in an
// open of a `/zone/fs` FIFO, announces them on NATS, and joins a place whose writers
// wait with a place whose readers wait (semantics in protocol.ts). A place is one FIFO
// on one /zone mount: two mounts are two kernel FIFOs, even on one node, so two
// workloads of one node are joined the same way as two nodes.
import { randomBytes, createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ensurePipeStream } from '../pipes/stream.ts';
import {
  announcementOf, fifoIdentity, gridPathOf, joinRequestOf, joinSubject,
  type Announcement, type Direction, type FifoIdentity, type WaiterReport,
} from './protocol.ts';
import { openFifoEnd, runSink, runSource, sessionMessages, sessionPipe, type FifoEnd, type SessionContext } from './session.ts';
import { watchFifoWaiters, type FifoWaiters } from './waiters.ts';

export interface FifoRelayOptions {
  nc: NatsConnection;
  /** This node's id (announcements name their place by it). */
  node: string;
  logger: Logger;
  /** The fifo-waiters helper's path. */
  waitersCommand: string;
}

interface Mount {
  mountpoint: string;
  owner: string;
}

/** One FIFO on one mount, while openers wait there or a session runs. */
interface Place {
  key: string;
  id: string;
  fifo: FifoIdentity;
  hostPath: string;
  /** Waiting threads and what they open for. */
  waiting: Map<number, Direction>;
  session: string | null;
  subscriptions: Subscription[];
}

/** How often a place with waiting openers says so again (announcements are not stored). */
const ANNOUNCE_EVERY_MS = 500;
/** How long a join request waits for the readers' place: it makes its consumer first, which a loaded cluster can take seconds for. */
const JOIN_TIMEOUT_MS = 20_000;

export class FifoRelay {
  private readonly mounts = new Map<number, Mount>();
  private readonly places = new Map<string, Place>();
  private readonly tids = new Map<number, Place>();
  /** The FIFO ends of the sessions that run. */
  private readonly ends = new Set<FifoEnd>();
  private ctx!: SessionContext;
  private readonly stopping = new AbortController();
  private waiters: FifoWaiters | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: FifoRelayOptions) {}

  async start(): Promise<void> {
    this.ctx = { nc: this.o.nc, js: jetstream(this.o.nc), jsm: await jetstreamManager(this.o.nc, { checkAPI: false }), logger: this.o.logger, signal: this.stopping.signal };
    this.waiters = watchFifoWaiters(this.o.waitersCommand, this.o.logger, (report) => this.onReport(report));
    this.timer = setInterval(() => { for (const place of this.places.values()) this.announce(place); }, ANNOUNCE_EVERY_MS);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.timer) clearInterval(this.timer);
    await this.waiters?.stop();
    // The sessions end with this process anyway (their bytes pass through it): writers get EPIPE, readers EOF.
    for (const end of this.ends) end.child.kill('SIGKILL');
    for (const place of this.places.values()) for (const s of place.subscriptions) s.unsubscribe();
    this.places.clear();
  }

  /** A /zone mount of `owner` whose FIFOs the relay joins; async (stats the mount, never synchronously). */
  async addMount(mountpoint: string, owner: string): Promise<void> {
    const { dev } = await stat(mountpoint);
    this.mounts.set(dev, { mountpoint, owner });
  }

  /** A FIFO of a mount was looked up: an open, which may wait for its other end, usually follows. */
  fifoLookedUp(): void {
    this.waiters?.poke();
  }

  removeMount(mountpoint: string): void {
    for (const [dev, mount] of this.mounts) if (mount.mountpoint === mountpoint) this.mounts.delete(dev);
  }

  private onReport(report: WaiterReport): void {
    if (report.kind === 'done') {
      const place = this.tids.get(report.tid);
      this.tids.delete(report.tid);
      if (!place) return;
      place.waiting.delete(report.tid);
      this.settle(place);
      return;
    }
    const mount = this.mounts.get(report.dev);
    const path = gridPathOf(report.path);
    if (!mount || !path) return;
    const place = this.placeOf(mount, path);
    place.waiting.set(report.tid, report.direction);
    this.tids.set(report.tid, place);
    this.announce(place);
  }

  private placeOf(mount: Mount, path: string): Place {
    const key = `${mount.mountpoint}\n${path}`;
    let place = this.places.get(key);
    if (place) return place;
    const fifo = fifoIdentity(mount.owner, path);
    const id = createHash('sha256').update(`${this.o.node}\n${key}`).digest('hex').slice(0, 16);
    place = { key, id, fifo, hostPath: join(mount.mountpoint, 'fs', path), waiting: new Map(), session: null, subscriptions: [] };
    const created = place;
    const heard = this.o.nc.subscribe(fifo.subject, { callback: (err, m) => {
      const a = err ? null : announcementOf(m.string());
      if (a) this.onAnnouncement(created, a);
    } });
    const joins = this.o.nc.subscribe(joinSubject(fifo, id), { callback: (err, m) => {
      const request = err ? null : joinRequestOf(m.string());
      if (!request) return;
      void this.acceptJoin(created, request.session).then((ok) => m.respond(JSON.stringify({ ok })));
    } });
    place.subscriptions.push(heard, joins);
    this.places.set(key, place);
    return place;
  }

  /** `end`, killed by stop() while it runs. */
  private held(end: FifoEnd): FifoEnd {
    this.ends.add(end);
    end.child.once('exit', () => this.ends.delete(end));
    return end;
  }

  private has(place: Place, direction: Direction): boolean {
    for (const d of place.waiting.values()) if (d === direction) return true;
    return false;
  }

  private announce(place: Place): void {
    if (place.session) return;
    for (const direction of ['read', 'write'] as const) {
      if (this.has(place, direction)) this.o.nc.publish(place.fifo.subject, JSON.stringify({ node: place.id, direction }));
    }
  }

  /** A place idle (nobody waits, no session) is forgotten. */
  private settle(place: Place): void {
    if (place.waiting.size > 0 || place.session) {
      this.announce(place);
      return;
    }
    for (const s of place.subscriptions) s.unsubscribe();
    this.places.delete(place.key);
  }

  private onAnnouncement(place: Place, a: Announcement): void {
    if (a.node === place.id || place.session) return;
    if (a.direction === 'read' && this.has(place, 'write')) void this.join(place, a.node);
    // Writers elsewhere: say at once that readers wait here, so their place joins.
    if (a.direction === 'write' && this.has(place, 'read')) this.announce(place);
  }

  /** The writers here join the readers waiting at place `other`: this place is the session's source. */
  private async join(place: Place, other: string): Promise<void> {
    const session = randomBytes(16).toString('hex');
    place.session = session;
    const pipe = sessionPipe(place.fifo.owner, session, place.id, other);
    try {
      // Before the join request, so the sink finds it.
      await ensurePipeStream(this.ctx.jsm, pipe);
      const reply = await this.o.nc.request(joinSubject(place.fifo, other), JSON.stringify({ session, stream: pipe.stream, subject: pipe.subject }), { timeout: JOIN_TIMEOUT_MS });
      if ((reply.json() as { ok?: unknown }).ok !== true) throw new Error('the readers\' place refused the join');
      const reader = this.held(await openFifoEnd(place.hostPath, 'read', this.o.waitersCommand));
      const outcome = await runSource(this.ctx, pipe, reader);
      this.o.logger.debug({ fifo: place.fifo.path, session, outcome }, 'fifos: writers\' side of a join ended');
    } catch (err) {
      await this.ctx.jsm.streams.delete(pipe.stream).catch(() => undefined);
      this.o.logger.debug({ err, fifo: place.fifo.path, session }, 'fifos: a join did not happen or broke');
    } finally {
      place.session = null;
      this.settle(place);
    }
  }

  /** Readers here join the writers of the requesting place: this place is the session's sink. */
  private async acceptJoin(place: Place, session: string): Promise<boolean> {
    if (place.session || !this.has(place, 'read')) return false;
    place.session = session;
    const pipe = sessionPipe(place.fifo.owner, session, '', place.id);
    let messages: ConsumerMessages | null = null;
    let writer: FifoEnd;
    try {
      messages = await sessionMessages(this.ctx, pipe);
      writer = this.held(await openFifoEnd(place.hostPath, 'write', this.o.waitersCommand));
    } catch (err) {
      void messages?.stop();
      this.o.logger.debug({ err, fifo: place.fifo.path, session }, 'fifos: a join was refused');
      place.session = null;
      this.settle(place);
      return false;
    }
    void runSink(this.ctx, pipe, messages, writer, place.hostPath).then(
      (outcome) => this.o.logger.debug({ fifo: place.fifo.path, session, outcome }, 'fifos: readers\' side of a join ended'),
      (err: unknown) => { writer.child.kill('SIGKILL'); this.o.logger.warn({ err, fifo: place.fifo.path, session }, 'fifos: readers\' side of a join broke'); },
    ).finally(() => {
      place.session = null;
      this.settle(place);
    });
    return true;
  }
}
