// The appliance's part in upgrades: what version runs here and what the supervisor
// recorded (GET /v1/node), taking a release (uploaded, or fetched from the grid's release
// store; verified, unpacked, then handed to the supervisor, which switches to it), and
// the health the supervisor's gate reads once the first full reconcile pass is done.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { EventLog } from '../events.ts';
import { MIGRATIONS } from '../migrations.ts';
import type { ReadyReport } from '../supervisor/gate.ts';
import type { SupervisorLink } from '../supervisor/child.ts';
import type { ReleaseInfo, ReleaseAccepted } from '../types.ts';
import type { ReleaseGrid } from './grid-releases.ts';
import { installRelease, MAX_BUNDLE_BYTES, removeAbandonedIncoming, UPLOAD_COPY, type InstalledRelease } from './install.ts';
import { releaseDigest, type SignedRelease } from './manifest.ts';
import { readReleaseState, releasesDir } from './state.ts';
import { releaseSigners } from './verify.ts';

/** An event's reason for a workload this process started or restarted (engine/status.ts): what an upgrade must not do. */
const STARTED = /^(restarted|created again|replaced|started)\b/;

export class NodeRelease {
  private workloadStarts = 0;
  private installing = false;

  constructor(private readonly o: {
    version: string; node: string; dataDir: string; policy: TrustPolicy; supervisor: SupervisorLink | null; events: EventLog; logger: Logger;
    /** The grid's release store, in a cluster; null: this node takes uploads only. */
    grid: ReleaseGrid | null;
  }) {
    o.events.subscribe((e) => {
      if (e.workload && STARTED.test(e.reason)) this.workloadStarts++;
    });
    removeAbandonedIncoming(o.dataDir).then(
      (count) => { if (count > 0) o.logger.info({ count }, 'removed releases left half-received by an earlier process'); },
      (err: unknown) => o.logger.warn({ err }, 'could not remove releases left half-received'),
    );
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

  /**
   * Verifies and unpacks the bundle, then asks the supervisor to switch to it. In a
   * cluster the bundle is also kept as it came and stored in the grid's release store
   * before the answer (`stored`), so that other nodes can take it by reference.
   */
  async install(body: Readable): Promise<ReleaseAccepted> {
    const grid = this.o.grid;
    return this.exclusively(async () => {
      if (!grid) return this.switchTo(await this.unpack(body), 'received', false);
      await mkdir(releasesDir(this.o.dataDir), { recursive: true, mode: 0o700 });
      const copy = join(releasesDir(this.o.dataDir), `${UPLOAD_COPY}${randomBytes(8).toString('hex')}.tar.gz`);
      try {
        const teed = copying(body, copy);
        const installed = await this.unpack(teed.stream);
        await teed.written;
        const { version } = installed.release.manifest;
        const stored = await grid.store()
          .then((store) => store.put({ version, digest: releaseDigest(installed.release.manifest), storedBy: this.o.node }, createReadStream(copy), new Date()))
          .then(() => true, (err: unknown) => {
            // The node still takes it; the others are sent the bundle instead (zone upgrade does).
            this.o.logger.warn({ err, version }, 'the release could not be stored in the grid\'s release store');
            return false;
          });
        return this.switchTo(installed, stored ? `received (stored in the grid's release store as ${releaseDigest(installed.release.manifest)})` : 'received', stored);
      } finally {
        await rm(copy, { force: true });
      }
    });
  }

  /**
   * Fetches the release `ref` (a version, or the `sha256:` digest of its signed manifest)
   * from the grid's release store and takes it as an upload of it: verified, unpacked
   * (the bundle must be the release asked for), then the supervisor switches to it.
   */
  async installStored(ref: string): Promise<ReleaseAccepted> {
    const grid = this.o.grid;
    if (!grid) throw new ZoneError('UNAVAILABLE', 'this node is not part of a NATS cluster: there is no grid release store to take a release from; upload the bundle (zone upgrade BUNDLE)');
    return this.exclusively(async () => {
      const unreachable = (err: unknown) => {
        if (err instanceof ZoneError) throw err;
        throw new ZoneError('UNAVAILABLE', `the grid's release store cannot be read now (${(err as Error).message}); try again, or upload the bundle`);
      };
      const store = await grid.store().catch(unreachable);
      const found = await store.find(ref).catch(unreachable);
      if (!found) throw new ZoneError('NOT_FOUND', `release ${ref} is not in the grid's release store: upload its bundle to a node of the grid (zone upgrade BUNDLE)`, '/release');
      const installed = await this.unpack(await store.read(found.version).catch(unreachable), (r) => {
        const got = ref.startsWith('sha256:') ? releaseDigest(r.manifest) : r.manifest.version;
        if (got !== ref) throw new ZoneError('CONFLICT', `the grid's release store holds another bundle under ${ref} (it is release ${r.manifest.version}, ${releaseDigest(r.manifest)}): upload the bundle again`, '/release');
      });
      return this.switchTo(installed, `fetched from the grid's release store (${releaseDigest(installed.release.manifest)})`, true);
    });
  }

  private async exclusively(work: () => Promise<ReleaseAccepted>): Promise<ReleaseAccepted> {
    if (!this.o.supervisor) throw new ZoneError('UNAVAILABLE', 'this node runs without a supervisor (npm run supervise starts one): it cannot switch releases');
    if (this.installing) throw new ZoneError('CONFLICT', 'a release is being installed on this node; try again once it is done');
    this.installing = true;
    try {
      return await work();
    } finally {
      this.installing = false;
    }
  }

  private unpack(source: Readable, expect?: (release: SignedRelease) => void): Promise<InstalledRelease> {
    return installRelease(source, this.o.dataDir, {
      policy: this.o.policy, running: this.o.version, nodeVersion: process.versions.node, storeSchema: MIGRATIONS.length,
    }, MAX_BUNDLE_BYTES, expect);
  }

  /** Records the release taken (`how`: received, fetched ...) and asks the supervisor to switch to it, once the answer has left. */
  private switchTo({ release, signers, ref }: InstalledRelease, how: string, stored: boolean): ReleaseAccepted {
    const supervisor = this.o.supervisor!;
    const { version } = release.manifest;
    const digest = releaseDigest(release.manifest);
    this.o.events.record({ owner: null, blueprint: null, workload: null, from: this.o.version, to: 'release-installed', reason: `release ${version} ${how} and unpacked, signed by ${signers.join(', ')}; the supervisor switches to it` });
    this.o.logger.info({ version, digest, signers, how }, 'release installed; asking the supervisor to switch');
    // After the answer has left: the supervisor stops this process first.
    setTimeout(() => supervisor.requestUpgrade(ref), 100).unref();
    return { version, digest, from: this.o.version, signers, stored };
  }
}

/** `source` as it flows on, and a copy of it written to `path` (done once `written` settles, after the stream's end). */
function copying(source: Readable, path: string): { stream: Readable; written: Promise<void> } {
  const file = createWriteStream(path, { mode: 0o600 });
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (file.write(chunk)) done(null, chunk);
      else file.once('drain', () => done(null, chunk));
    },
    flush(done) {
      file.end(() => done());
    },
  });
  const written = new Promise<void>((resolve, reject) => {
    file.once('finish', resolve).once('error', reject);
  });
  written.catch(() => undefined);
  file.once('error', (err) => tee.destroy(err));
  // A refused bundle's stream is destroyed: the copy's file closes with it.
  tee.once('close', () => { if (!file.writableFinished) file.destroy(); });
  return { stream: pipeline(source, tee, () => undefined), written };
}
