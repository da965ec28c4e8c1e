// The Docker events stream -> DriverEvents: one subscription per driver, filtered to our
// node's label, reconnecting with backoff when dockerd goes away (and saying so).
import { createInterface } from 'node:readline';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type Docker from 'dockerode';
import type { DriverEvent } from '../contract.ts';
import { dockerMessageOf } from './errors.ts';
import { containerNameOf, healthOf, identityOf } from './observed.ts';
import { LABELS } from './spec.ts';

const DockerEventMessage = Type.Object({
  Type: Type.String(),
  Action: Type.String(),
  Actor: Type.Object({ ID: Type.String(), Attributes: Type.Record(Type.String(), Type.String()) }),
  time: Type.Integer(),
  timeNano: Type.Optional(Type.Number()),
});

/** Docker's `oom` precedes its `die`; it only feeds the exited event's `oomKilled`. */
export type ContainerEvent = DriverEvent | { type: 'oom'; id: string; at: Date };

/** The Docker actions this driver listens to (`health_status` matches `health_status: <state>`). */
export const WATCHED_ACTIONS = ['start', 'die', 'oom', 'destroy', 'health_status'] as const;

/** One line of the events stream -> an event about one of `node`'s containers, or null. */
export function containerEventOf(message: unknown, node: string): ContainerEvent | null {
  if (!Value.Check(DockerEventMessage, message) || message.Type !== 'container') return null;
  const attributes = message.Actor.Attributes;
  const identity = identityOf(attributes);
  const id = containerNameOf(attributes.name ?? '');
  if (!identity || identity.node !== node || !id) return null;
  const at = new Date(message.timeNano !== undefined ? Math.round(message.timeNano / 1e6) : message.time * 1000);
  const [action, detail] = message.Action.split(': ', 2);
  switch (action) {
    case 'start':
      return { type: 'started', id, at };
    case 'die': {
      const code = Number.parseInt(attributes.exitCode ?? '', 10);
      return { type: 'exited', id, at, exitCode: Number.isNaN(code) ? null : code, oomKilled: false };
    }
    case 'oom':
      return { type: 'oom', id, at };
    case 'destroy':
      return { type: 'removed', id, at };
    case 'health_status': {
      const health = healthOf(detail?.trim());
      return health ? { type: 'health', id, at, health } : null;
    }
    default:
      return null;
  }
}

export interface EventFeedOptions {
  node: string;
  socketPath: string;
  /** Whether the container was OOM-killed, asked when a `die` came without an `oom` before it. */
  oomKilled(id: string): Promise<boolean>;
  /** Told of every event of one of the node's containers as soon as it is read, before listeners hear of it. */
  touched?(id: string): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class DockerEventFeed {
  private readonly listeners = new Set<(event: DriverEvent) => void>();
  private readonly oomSeen = new Set<string>();
  /** Events are delivered in order, even when one waits for an inspect. */
  private delivery: Promise<void> = Promise.resolve();
  private abort: AbortController | null = null;
  private engineDown = false;
  /** Changes whenever the stream connects or ends: what was learnt under another value may have missed events. */
  private session = 0;
  private connected = false;

  constructor(private readonly docker: Docker, private readonly options: EventFeedOptions) {}

  subscribe(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.abort) {
      this.abort = new AbortController();
      void this.follow(this.abort.signal);
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    this.listeners.clear();
    this.abort?.abort();
    this.abort = null;
    this.connected = false;
    this.session++;
  }

  /**
   * The current stream's number while it is connected (every event of the node's
   * containers since then has been or will be passed to `touched`), null otherwise.
   */
  liveSession(): number | null {
    return this.connected ? this.session : null;
  }

  private async follow(signal: AbortSignal): Promise<void> {
    const initial = this.options.initialBackoffMs ?? 250;
    let backoff = initial;
    while (!signal.aborted) {
      let reason = 'the events stream ended';
      try {
        const stream = await this.docker.getEvents({
          abortSignal: signal,
          filters: { type: ['container'], label: [`${LABELS.node}=${this.options.node}`], event: [...WATCHED_ACTIONS] },
        });
        if (this.engineDown) {
          this.engineDown = false;
          this.deliver({ type: 'engine', at: new Date(), available: true });
        }
        backoff = initial;
        this.session++;
        this.connected = true;
        try {
          await this.read(stream, signal);
        } finally {
          this.connected = false;
          this.session++;
        }
      } catch (err) {
        reason = `dockerd not reachable at ${this.options.socketPath}: ${dockerMessageOf(err)}`;
      }
      if (signal.aborted) return;
      if (!this.engineDown) {
        this.engineDown = true;
        this.deliver({ type: 'engine', at: new Date(), available: false, reason });
      }
      await delay(backoff, signal);
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 5000);
    }
  }

  /** Resolves when the stream ends, fails, or the feed stops. */
  private async read(stream: NodeJS.ReadableStream, signal: AbortSignal): Promise<void> {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => this.onLine(line));
    let done = () => {};
    await new Promise<void>((resolve) => {
      done = () => resolve();
      stream.once('end', done);
      stream.once('close', done);
      // Kept after the first: a reset connection may report more than one error.
      stream.on('error', done);
      // readline re-emits its input's errors.
      lines.on('error', done);
      signal.addEventListener('abort', done, { once: true });
    });
    signal.removeEventListener('abort', done);
    lines.close();
    (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }

  private onLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return; // not an event: nothing to act on
    }
    const event = containerEventOf(message, this.options.node);
    if (!event) return;
    if ('id' in event) this.options.touched?.(event.id);
    if (event.type === 'oom') {
      this.oomSeen.add(event.id);
      return;
    }
    if (event.type === 'exited') {
      this.deliver(async () => ({ ...event, oomKilled: this.oomSeen.delete(event.id) || (await this.options.oomKilled(event.id)) }));
      return;
    }
    this.deliver(event);
  }

  private deliver(event: DriverEvent | (() => Promise<DriverEvent>)): void {
    this.delivery = this.delivery.then(async () => {
      const e = typeof event === 'function' ? await event() : event;
      for (const listener of [...this.listeners]) {
        try {
          listener(e);
        } catch (err) {
          // One failing listener must not starve the others; it is reported, not hidden.
          process.emitWarning(`docker driver: an event listener threw: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    });
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
