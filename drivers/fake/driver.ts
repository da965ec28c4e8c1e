// An in-memory driver for the engine's unit tests and benchmarks only (never started
// by the appliance): it keeps workloads in a map and lets a test play the engine's
// part: crash one, remove or change one behind the engine's back, report health,
// go unreachable and come back. With `stateFile` its state outlives the process, as
// a real engine's containers outlive the appliance.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  EngineUnavailableError, WorkloadSpecError,
  type AttachedStreams, type Capabilities, type Driver, type DriverEvent, type Fingerprint, type HealthState, type LogOptions, type ObservedWorkload, type WorkloadSpec,
} from '../contract.ts';
import { nameClash, sameWorkload } from '../names.ts';

export interface FakeDriverOptions {
  kind?: string;
  /** What it declares; attach (a loop: stdin comes back on stdout) by default. */
  capabilities?: Partial<Capabilities>;
  /** Keep the workloads in this JSON file (written on every change). */
  stateFile?: string;
  /** Simulated engine latency of `ensure`. */
  ensureDelayMs?: number;
}

export class FakeDriver implements Driver {
  readonly kind: string;
  readonly capabilities: Readonly<Capabilities>;
  private readonly workloads = new Map<string, ObservedWorkload>();
  private readonly listeners = new Set<(event: DriverEvent) => void>();
  private unavailableReason: string | null = null;
  private readonly rejectedImages = new Set<string>();
  /** Calls per operation, for tests that count what the engine did. */
  readonly calls = { ensure: 0, create: 0, start: 0, stop: 0, remove: 0, list: 0 };
  /** The most `ensure` calls in flight at once, and ids that had two at once (the engine must serialize per workload). */
  readonly concurrency = { peak: 0, overlapping: new Set<string>() };
  private readonly ensuring = new Set<string>();

  constructor(private readonly options: FakeDriverOptions = {}) {
    this.kind = options.kind ?? 'container';
    this.capabilities = { attach: true, console: false, mount: false, ...options.capabilities };
    if (options.stateFile) {
      try {
        for (const w of JSON.parse(readFileSync(options.stateFile, 'utf8')) as ObservedWorkload[]) this.workloads.set(w.id, w);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  // --- the Driver contract ---

  async fingerprint(): Promise<Fingerprint & { capabilities: Capabilities }> {
    return {
      kind: this.kind, available: this.unavailableReason === null, ...(this.unavailableReason ? { reason: this.unavailableReason } : {}),
      version: 'fake', details: {}, capabilities: { ...this.capabilities },
    };
  }

  async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    this.calls.ensure++;
    this.check();
    if (this.ensuring.has(spec.id)) this.concurrency.overlapping.add(spec.id);
    this.ensuring.add(spec.id);
    this.concurrency.peak = Math.max(this.concurrency.peak, this.ensuring.size);
    try {
      if (this.options.ensureDelayMs) await delay(this.options.ensureDelayMs);
    } finally {
      this.ensuring.delete(spec.id);
    }
    if (this.rejectedImages.has(spec.definition.image)) throw new WorkloadSpecError(spec.workload, 'image', `image ${spec.definition.image} not found`);
    let w = this.workloads.get(spec.id);
    // As real engines' drivers: a thing of another identity under this name is never adopted.
    if (w && !sameWorkload(w, spec)) throw nameClash(spec, 'fake workload', w);
    if (!w) {
      this.calls.create++;
      w = {
        id: spec.id, node: spec.node, owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload,
        kind: spec.definition.kind, specHash: spec.specHash, state: 'created', exitCode: null, startedAt: null, finishedAt: null,
        health: null, oomKilled: false,
      };
      this.workloads.set(spec.id, w);
    }
    if (w.state !== 'running') {
      this.calls.start++;
      Object.assign(w, { state: 'running', exitCode: null, oomKilled: false, startedAt: new Date().toISOString(), finishedAt: null, health: spec.definition.health ? 'starting' : null });
      this.changed({ type: 'started', id: w.id, at: new Date() });
    }
    return { ...w };
  }

  async stop(id: string): Promise<void> {
    this.calls.stop++;
    this.check();
    const w = this.workloads.get(id);
    if (w?.state === 'running') this.exit(w, 143, false);
  }

  async inspect(id: string): Promise<ObservedWorkload | null> {
    this.check();
    const w = this.workloads.get(id);
    return w ? { ...w } : null;
  }

  async list(node: string): Promise<ObservedWorkload[]> {
    this.calls.list++;
    this.check();
    return [...this.workloads.values()].filter((w) => w.node === node).map((w) => ({ ...w }));
  }

  async remove(id: string): Promise<void> {
    this.calls.remove++;
    this.check();
    if (this.workloads.delete(id)) this.changed({ type: 'removed', id, at: new Date() });
  }

  watch(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async logs(id: string, _options: LogOptions): Promise<Readable> {
    this.check();
    const w = this.workloads.get(id);
    if (!w) throw new Error(`no workload ${id}`);
    return Readable.from([`${w.workload} ${w.state}\n`]);
  }

  async attach(id: string): Promise<AttachedStreams> {
    this.check();
    if (!this.capabilities.attach && !this.capabilities.console) throw new Error(`the fake ${this.kind} driver declares no attach`);
    if (!this.workloads.has(id)) throw new Error(`no workload ${id}`);
    const loop = new PassThrough();
    return { stdin: loop, stdout: loop };
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  // --- test controls: what a real engine or an intruder would do ---

  /** The process of `id` exits with `exitCode`. */
  crash(id: string, exitCode = 1, oomKilled = false): void {
    const w = this.get(id);
    this.exit(w, exitCode, oomKilled);
  }

  /** Someone removed it behind the appliance's back. */
  removeBehindBack(id: string): void {
    this.get(id);
    this.workloads.delete(id);
    this.changed({ type: 'removed', id, at: new Date() });
  }

  /** Someone changed its definition behind the appliance's back. */
  changeBehindBack(id: string, specHash = 'changed-behind-the-back'): void {
    this.get(id).specHash = specHash;
    this.changed();
  }

  setHealth(id: string, health: HealthState): void {
    this.get(id).health = health;
    this.changed({ type: 'health', id, at: new Date(), health });
  }

  /** The engine goes away (`reason`) or comes back (null). */
  setUnavailable(reason: string | null): void {
    this.unavailableReason = reason;
    this.emit({ type: 'engine', at: new Date(), available: reason === null, ...(reason ? { reason } : {}) });
  }

  /** `ensure` of a workload with this image fails as a real engine's would for a missing image. */
  rejectImage(image: string): void {
    this.rejectedImages.add(image);
  }

  /** What the fake engine holds (copies). */
  snapshot(): ObservedWorkload[] {
    return [...this.workloads.values()].map((w) => ({ ...w }));
  }

  private get(id: string): ObservedWorkload {
    const w = this.workloads.get(id);
    if (!w) throw new Error(`fake driver: no workload ${id}`);
    return w;
  }

  private exit(w: ObservedWorkload, exitCode: number, oomKilled: boolean): void {
    Object.assign(w, { state: 'exited', exitCode, oomKilled, finishedAt: new Date().toISOString(), health: null });
    this.changed({ type: 'exited', id: w.id, at: new Date(), exitCode, oomKilled });
  }

  private check(): void {
    if (this.unavailableReason !== null) throw new EngineUnavailableError(this.kind, this.unavailableReason);
  }

  private changed(event?: DriverEvent): void {
    if (this.options.stateFile) {
      const tmp = `${this.options.stateFile}.tmp`;
      writeFileSync(tmp, JSON.stringify([...this.workloads.values()]));
      renameSync(tmp, this.options.stateFile);
    }
    if (event) this.emit(event);
  }

  private emit(event: DriverEvent): void {
    // Engines report asynchronously; so does the fake.
    queueMicrotask(() => this.listeners.forEach((l) => l(event)));
  }
}
