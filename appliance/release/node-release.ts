// The appliance's part in upgrades: what version runs here and what the supervisor
// recorded (GET /v1/node), taking an uploaded release (verified, unpacked, then handed
// to the supervisor, which switches to it), and the health the supervisor's gate reads
// once the first full reconcile pass is done.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { EventLog } from '../events.ts';
import { MIGRATIONS } from '../migrations.ts';
import type { ReadyReport } from '../supervisor/gate.ts';
import type { SupervisorLink } from '../supervisor/child.ts';
import type { ReleaseInfo, ReleaseAccepted } from '../types.ts';
import { installRelease, MAX_BUNDLE_BYTES } from './install.ts';
import { readReleaseState } from './state.ts';
import { releaseSigners } from './verify.ts';

/** An event's reason for a workload this process started or restarted (engine/status.ts): what an upgrade must not do. */
const STARTED = /^(restarted|created again|replaced|started)\b/;

export class NodeRelease {
  private workloadStarts = 0;
  private installing = false;

  constructor(private readonly o: {
    version: string; dataDir: string; policy: TrustPolicy; supervisor: SupervisorLink | null; events: EventLog; logger: Logger;
  }) {
    o.events.subscribe((e) => {
      if (e.workload && STARTED.test(e.reason)) this.workloadStarts++;
    });
  }

  info(): ReleaseInfo {
    const state = readReleaseState(this.o.dataDir);
    return { running: this.o.version, previous: state.previous?.version ?? null, supervised: this.o.supervisor !== null, lastUpgrade: state.lastUpgrade };
  }

  /** The keys whose read tokens may upload a release: the release signers'. */
  uploaderKeys(): string[] {
    return releaseSigners(this.o.policy).signers.map((s) => s.key);
  }

  /** The gate's report, once `firstPass` (the first full reconcile pass) is done. */
  async health(firstPass: Promise<void>, url: string, pseudokernel: ReadyReport['pseudokernel']): Promise<Omit<ReadyReport, 'type'>> {
    await firstPass;
    return { version: this.o.version, url, pseudokernel, workloadStarts: this.workloadStarts };
  }

  /** Verifies and unpacks the bundle, then asks the supervisor to switch to it. */
  async install(body: Readable): Promise<ReleaseAccepted> {
    const supervisor = this.o.supervisor;
    if (!supervisor) throw new ZoneError('UNAVAILABLE', 'this node runs without a supervisor (npm run supervise starts one): it cannot switch releases');
    if (this.installing) throw new ZoneError('CONFLICT', 'a release is being installed on this node; try again once it is done');
    this.installing = true;
    try {
      const { release, signers, ref } = await installRelease(body, this.o.dataDir, {
        policy: this.o.policy, running: this.o.version, nodeVersion: process.versions.node, storeSchema: MIGRATIONS.length,
      }, MAX_BUNDLE_BYTES);
      const version = release.manifest.version;
      this.o.events.record({ owner: null, blueprint: null, workload: null, from: this.o.version, to: 'release-installed', reason: `release ${version} received and unpacked, signed by ${signers.join(', ')}; the supervisor switches to it` });
      this.o.logger.info({ version, signers }, 'release installed; asking the supervisor to switch');
      // After the answer has left: the supervisor stops this process first.
      setTimeout(() => supervisor.requestUpgrade(ref), 100).unref();
      return { version, from: this.o.version, signers };
    } finally {
      this.installing = false;
    }
  }
}
