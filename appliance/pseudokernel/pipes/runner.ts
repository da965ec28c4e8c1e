// Keeps every local pipe end running: a loop per end relays (producer) or feeds
// (consumer) the current incarnation of its workload, and looks again when a driver
// reports an event, when the resync timer fires, or at once after an incarnation was
// done. Level-triggered like the engine: what to do is read from the workload's state
// and the stream each time, so a missed event costs a resync period, not a byte.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StreamState } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { pipeEndKey, type Driver } from '../../../drivers/contract.ts';
import type { PipeLag } from '../interfaces.ts';
import { pipeIdentity, type LocalPipeEnd, type PipeIdentity } from '../../../blueprints/pipes.ts';
import { PIPE_POSITIONS } from './ends.ts';
import { feedIncarnation, type FeedOutcome } from './consumer.ts';
import { relayIncarnation, type RelayOutcome } from './producer.ts';
import { ensurePipeStream, readPosition } from './stream.ts';
import { retryingTimeouts } from '../nats/jetstream-retry.ts';
import type { PipeWorkload } from './workload.ts';

export interface PipeRunnerOptions {
  nc: NatsConnection;
  /** The driver and engine-side id of an end's workload; null while it has none (not created yet). */
  locate(end: LocalPipeEnd): PipeWorkload | null;
  logger: Logger;
  /** Looks at every end this often even without driver events; 5 s by default. */
  resyncMs?: number;
}

export interface PipeStats extends PipeLag {
  /** The pipe's id (see pipeIdentity). */
  pipe: string;
  role: LocalPipeEnd['role'];
  /** Payload bytes this node published (producer end) since the runner started. */
  bytesProduced: number;
  /** Payload bytes this node wrote to the consumer's stdin since the runner started. */
  bytesConsumed: number;
  /** `working`: relaying or feeding an incarnation; `waiting`: for the workload to start, or for data. */
  state: 'waiting' | 'working' | 'error';
  /** The last failure, until an incarnation is relayed or fed. */
  error: string | null;
}

interface EndLoop {
  end: LocalPipeEnd;
  /** Its stream exists (made by the first pass that reached NATS). */
  streamReady: boolean;
  abort: AbortController;
  /** Set by wake(): the loop looks again instead of sleeping. */
  dirty: boolean;
  wakeUp: (() => void) | null;
  bytes: number;
  state: PipeStats['state'];
  error: string | null;
  done: Promise<void>;
}

const DEFAULT_RESYNC_MS = 5000;


export class PipeRunner {
  private readonly js: JetStreamClient;
  /** The manager and the positions bucket, once NATS answered (tried again by the next pass if not). */
  private nats: Promise<{ jsm: JetStreamManager; positions: KV }> | null = null;
  private readonly loops = new Map<string, EndLoop>();
  private readonly watched = new Map<Driver, () => void>();

  constructor(private readonly o: PipeRunnerOptions) {
    this.js = jetstream(o.nc);
  }

  /**
   * Runs exactly these ends from now on: new ones start, dropped ones stop (a consumer
   * being fed gets EOF). Resolves once the dropped ones have stopped.
   */
  async setEnds(ends: readonly LocalPipeEnd[]): Promise<void> {
    const wanted = new Map(ends.map((e) => [pipeEndKey(e), e]));
    for (const [key, end] of wanted) if (!this.loops.has(key)) this.startLoop(key, end);
    await Promise.all([...this.loops.entries()].filter(([key]) => !wanted.has(key)).map(([key, loop]) => this.stopLoop(key, loop)));
  }

  /** Makes every end look again now (the appliance calls it on workload changes; driver events do it too). */
  wake(): void {
    for (const loop of this.loops.values()) {
      loop.dirty = true;
      loop.wakeUp?.();
    }
  }

  async stats(): Promise<PipeStats[]> {
    return Promise.all([...this.loops.values()].map(async (loop): Promise<PipeStats> => {
      const { end } = loop;
      const lag = loop.streamReady ? await this.lag(end).catch(() => ({ lagMessages: 0, lagBytes: 0 })) : { lagMessages: 0, lagBytes: 0 };
      return {
        pipe: end.id, from: end.from, to: end.to, role: end.role,
        bytesProduced: end.role === 'produce' ? loop.bytes : 0,
        bytesConsumed: end.role === 'consume' ? loop.bytes : 0,
        ...lag,
        state: loop.state, error: loop.error,
      };
    }));
  }

  /**
   * Every pipe of `owner` whose stream exists, on any node: a stream is the owner's when
   * its name is the hash of the owner and the ends its description names.
   */
  async ownerPipes(owner: string): Promise<PipeLag[]> {
    const { jsm } = await this.connected();
    const pipes: PipeLag[] = [];
    for await (const info of jsm.streams.list('zone.pipe.*')) {
      const m = /^zone pipe (\S+) -> (\S+)$/.exec(info.config.description ?? '');
      const pipe = m ? pipeIdentity(owner, m[1]!, m[2]!) : null;
      if (pipe?.stream !== info.config.name) continue;
      pipes.push({ from: pipe.from, to: pipe.to, ...await this.lag(pipe, info.state) });
    }
    return pipes.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.loops.entries()].map(([key, loop]) => this.stopLoop(key, loop)));
    for (const unwatch of this.watched.values()) unwatch();
    this.watched.clear();
  }

  private startLoop(key: string, end: LocalPipeEnd): void {
    const loop: EndLoop = { end, streamReady: false, abort: new AbortController(), dirty: true, wakeUp: null, bytes: 0, state: 'waiting', error: null, done: Promise.resolve() };
    loop.done = this.run(loop);
    this.loops.set(key, loop);
  }

  private async stopLoop(key: string, loop: EndLoop): Promise<void> {
    loop.abort.abort();
    loop.wakeUp?.();
    await loop.done;
    this.loops.delete(key);
  }

  private async run(loop: EndLoop): Promise<void> {
    const { signal } = loop.abort;
    while (!signal.aborted) {
      loop.dirty = false;
      let outcome: RelayOutcome | FeedOutcome = 'nothing';
      try {
        outcome = await this.pass(loop);
        if (outcome === 'relayed' || outcome === 'fed') loop.error = null;
        loop.state = loop.error ? 'error' : 'waiting';
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        // Once per failure, not once per resync.
        if (message !== loop.error) this.o.logger.warn({ pipe: loop.end.id, role: loop.end.role, from: loop.end.from, to: loop.end.to, err }, 'pipe end pass failed; trying again at the next wake');
        loop.error = message;
        loop.state = 'error';
      }
      // An incarnation done: the workload may already run its next one.
      if (outcome === 'relayed' || outcome === 'fed') continue;
      await this.nextWake(loop);
    }
  }

  private async pass(loop: EndLoop): Promise<RelayOutcome | FeedOutcome> {
    const { end } = loop;
    const workload = this.o.locate(end);
    if (!workload) return 'nothing';
    this.watch(workload.driver);
    // Pipes join the main process's stdio (a held stdout, StdinOnce): a console is not that.
    if (!workload.driver.capabilities.attach) throw new Error(`pipes join workloads whose driver attaches to stdio: ${end.workload} runs on the ${workload.driver.kind} driver, which does not`);
    const { jsm, positions } = await this.connected();
    if (!loop.streamReady) await ensurePipeStream(jsm, end);
    loop.streamReady = true;
    loop.state = 'working';
    const common = { js: this.js, jsm, pipe: end, workload, signal: loop.abort.signal, logger: this.o.logger };
    if (end.role === 'produce') return relayIncarnation({ ...common, onPublished: (n) => (loop.bytes += n) });
    return feedIncarnation({ ...common, positions, onWritten: (n) => (loop.bytes += n) });
  }

  private connected(): Promise<{ jsm: JetStreamManager; positions: KV }> {
    this.nats ??= (async () => ({
      jsm: await jetstreamManager(this.o.nc),
      positions: await retryingTimeouts('opening the pipe positions', () => new Kvm(this.o.nc).create(PIPE_POSITIONS, { history: 1 })),
    }))();
    return this.nats.catch((err: unknown) => {
      this.nats = null;
      throw err;
    });
  }

  private nextWake(loop: EndLoop): Promise<void> {
    if (loop.dirty || loop.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.o.resyncMs ?? DEFAULT_RESYNC_MS);
      function done() {
        clearTimeout(timer);
        loop.wakeUp = null;
        resolve();
      }
      loop.wakeUp = done;
    });
  }

  private watch(driver: Driver): void {
    if (this.watched.has(driver)) return;
    this.watched.set(driver, driver.watch(() => this.wake()));
  }

  /** The pipe's lag from its stream's state (read now when not given) and its consumer's position. */
  private async lag(pipe: PipeIdentity, known?: StreamState): Promise<Pick<PipeLag, 'lagMessages' | 'lagBytes'>> {
    const { jsm, positions } = await this.connected();
    const [state, position] = await Promise.all([known ?? jsm.streams.info(pipe.stream).then((i) => i.state), readPosition(positions, pipe)]);
    // Committed messages are purged but the last marker, and those of an input too long
    // for the stream as it is fed (but the last one fed): the stream holds what is still to commit.
    const lagMessages = Math.max(0, state.last_seq - Math.max(position.committed, position.trimmed?.seq ?? 0));
    return { lagMessages, lagBytes: lagMessages === 0 ? 0 : state.bytes };
  }
}
