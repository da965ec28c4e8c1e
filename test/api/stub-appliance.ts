// A small in-test Appliance for what the real one cannot be made to do on demand:
// fail unexpectedly, hold thousands of events at once, be slow.
import { Readable } from 'node:stream';
import { ZoneError } from '../../lib/errors.ts';
import type { GridFs, PipeLag, ProcEntry } from '../../appliance/pseudokernel/interfaces.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import type { Appliance, BlueprintStatus, NodeInfo, SubmitResult, VolumeStatus, ZoneEvent } from '../../appliance/types.ts';
import { TokenChecker } from '../../lib/tokens.ts';

export class StubAppliance implements Appliance {
  readonly stored: ZoneEvent[] = [];
  private readonly listeners = new Set<(e: ZoneEvent) => void>();
  failWith: Error | null = null;

  constructor(readonly tokens = new TokenChecker('stub')) {}

  /** Appends `n` events and tells the listeners. */
  addEvents(n: number, blueprint = 'bp'): void {
    for (let i = 0; i < n; i++) {
      const e: ZoneEvent = { seq: this.stored.length + 1, at: new Date().toISOString(), blueprint, owner: null, workload: 'w', from: 'pending', to: 'running', reason: `event ${this.stored.length + 1}` };
      this.stored.push(e);
      this.listeners.forEach((l) => l(e));
    }
  }

  async nodeInfo(): Promise<NodeInfo> {
    if (this.failWith) throw this.failWith;
    const c = { cpus: 1, memoryBytes: 1, diskBytes: 1 };
    return { id: 'stub', signingKey: 'ed25519:x', boxKey: 'x', version: '0', uptimeSeconds: 0, drivers: [], capacity: { total: c, reserved: c, free: c } };
  }

  verificationContext(): { policy: TrustPolicy; nodeId: string } {
    return { policy: { signers: [{ key: generateSigningKeyPair().publicKey, weight: 1 }], threshold: 1 }, nodeId: 'stub' };
  }

  async submit(): Promise<SubmitResult> {
    throw this.failWith ?? new Error('stub');
  }

  listBlueprints(): BlueprintStatus[] {
    return [];
  }

  /** What listVolumes() answers (filtered by owner, as the appliance does). */
  volumes: VolumeStatus[] = [];

  async listVolumes(owner?: string): Promise<VolumeStatus[]> {
    return this.volumes.filter((v) => owner === undefined || v.owner === owner);
  }

  getBlueprint(): BlueprintStatus | null {
    return null;
  }

  events(options: { after?: number; blueprint?: string; limit?: number }): ZoneEvent[] {
    return this.stored.filter((e) => e.seq > (options.after ?? 0) && (!options.blueprint || e.blueprint === options.blueprint)).slice(0, options.limit ?? Infinity);
  }

  onEvent(listener: (e: ZoneEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async logs(): Promise<Readable> {
    if (this.failWith) throw this.failWith;
    return Readable.from([]);
  }

  async gridFs(): Promise<GridFs> {
    return this.noPseudokernel();
  }

  async gridProc(): Promise<ProcEntry[]> {
    return this.noPseudokernel();
  }

  async gridPipes(): Promise<PipeLag[]> {
    return this.noPseudokernel();
  }

  async gridRestart(): Promise<void> {
    return this.noPseudokernel();
  }

  private noPseudokernel(): never {
    throw this.failWith ?? new ZoneError('UNAVAILABLE', 'the stub has no pseudokernel');
  }
}
