// The Docker driver: workloads of kind `container` through dockerode. The translation
// is in spec.ts (create options) and observed.ts (inspect -> ObservedWorkload); this
// file is the I/O.
import { join } from 'node:path';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import Docker from 'dockerode';
import {
  WorkloadSpecError, type AttachOptions, type AttachedStreams, type Capabilities, type Driver, type DriverContext, type DriverEvent, type Fingerprint, type LocalImages, type LogOptions,
  type ObservedWorkload, type TerminalOptions, type TerminalSession, type WorkloadSpec, type WorkloadUsage,
} from '../contract.ts';
import { dockerMessageOf, engineErrorOf, isUnreachable, specErrorOf, statusCodeOf } from './errors.ts';
import { DockerEventFeed } from './events.ts';
import { FrameDemuxer, STDOUT_FRAME } from './frames.ts';
import { loadImageFile } from './images.ts';
import { ensureNamedImage } from './registries.ts';
import { ensurePinnedImage, loadedDockerImages, type PinnedImageContext } from './pinned.ts';
import { dockerdLoads } from '../images/loaded.ts';
import { pinnedImage } from '../../blueprints/image-ref.ts';
import { containerNameOf, identityOf, observedOf, parseContainerInspect, type ContainerInspect } from './observed.ts';
import { ListedContainers } from './listed.ts';
import { nameClash, sameWorkload } from '../names.ts';
import { accountOf, readContainerFile, SecretFiles, sealedEnvNames } from './secrets.ts';
import { ensureOwnerNetwork, ownerNetworkName, ownerNetworkOf, removeOwnerNetworkIfUnused } from './owner-network.ts';
import { KeyedLock } from '../keyed-lock.ts';
import { refusingStdin } from '../streams.ts';
import { LABELS, containerCreateOptions, replayWindow } from './spec.ts';
import { containerUsage, execShell } from './terminal.ts';

export interface DockerDriverOptions {
  /** dockerd's API socket; /var/run/docker.sock by default. */
  socketPath?: string;
  /** The grace period `remove()` gives a running container before killing it. */
  removeGraceMs?: number;
  /** The host directory (on a tmpfs) for sealed values' files; /dev/shm/zone-secrets by default (secrets.ts). */
  secretsRoot?: string;
}

/** A stdout attached before ensure() started its container: every byte of that incarnation. */
interface HeldStdout {
  stdout: Readable;
  startedAt: Promise<string | null>;
}

/** What ensure() does with the stdout it holds: say which incarnation it is, or let it go (the start failed). */
interface HoldHandle {
  started(at: string | null): void;
  drop(): void;
}

const DEFAULT_SOCKET = '/var/run/docker.sock';
const DEFAULT_REMOVE_GRACE_MS = 10_000;
/**
 * What an attached stdout holds before its reader takes it: a pipe's producer reads all
 * that is there at once, so under load its messages are about this large.
 */
const ATTACH_READ_AHEAD_BYTES = 1024 * 1024;

export class DockerDriver implements Driver {
  readonly kind = 'container';
  readonly capabilities: Readonly<Capabilities> = { attach: true, console: false, mount: true };
  private readonly docker: Docker;
  private readonly socketPath: string;
  private readonly events: DockerEventFeed;
  /** By container name, until attach(id, { replay: true }) takes it. */
  private readonly held = new Map<string, HeldStdout>();
  private readonly secrets: SecretFiles;
  /**
   * By owner network: making it and creating containers in it (shared: many at once),
   * or finding no container left and removing it (exclusive), never interleave.
   */
  private readonly ownerNetworks = new KeyedLock();
  /** By owner network: the ensureOwnerNetwork under way. */
  private readonly ensuringNetworks = new Map<string, Promise<string>>();
  private readonly pinnedImages: PinnedImageContext;
  readonly localImages: LocalImages;
  /** What list() inspected, while no event says it changed. */
  private readonly listed = new ListedContainers();

  constructor(private readonly ctx: DriverContext, private readonly options: DockerDriverOptions = {}) {
    this.socketPath = options.socketPath ?? DEFAULT_SOCKET;
    this.docker = new Docker({ socketPath: this.socketPath });
    this.secrets = new SecretFiles(ctx, options.secretsRoot);
    const loaded = dockerdLoads(ctx.dataDir);
    this.pinnedImages = {
      docker: this.docker, source: ctx.images, dir: join(ctx.dataDir, 'docker-images'), fetches: new KeyedLock(), loaded,
      registries: { docker: this.docker, registries: ctx.registries ?? [], pulls: new KeyedLock() },
    };
    this.localImages = loadedDockerImages(this.docker, loaded);
    this.events = new DockerEventFeed(this.docker, {
      node: ctx.node,
      socketPath: this.socketPath,
      touched: (name) => this.listed.touched(name),
      oomKilled: async (id) => (await this.inspectContainer(id).catch(() => null))?.State.OOMKilled ?? false,
    });
  }

  async fingerprint(): Promise<Fingerprint & { capabilities: Capabilities }> {
    const capabilities = { ...this.capabilities };
    try {
      const [version, info] = await Promise.all([this.docker.version(), this.docker.info() as Promise<Record<string, unknown>>]);
      const details: Record<string, string | number | boolean> = { apiVersion: version.ApiVersion, os: version.Os, arch: version.Arch };
      for (const [key, field] of [['kernelVersion', 'KernelVersion'], ['storageDriver', 'Driver'], ['cgroupDriver', 'CgroupDriver'], ['cgroupVersion', 'CgroupVersion']] as const) {
        const value = info[field];
        if (typeof value === 'string') details[key] = value;
      }
      return { kind: this.kind, available: true, version: version.Version, details, capabilities };
    } catch (err) {
      const reason = isUnreachable(err) ? `dockerd not reachable at ${this.socketPath}: ${dockerMessageOf(err)}` : `dockerd answered with an error: ${dockerMessageOf(err)}`;
      return { kind: this.kind, available: false, reason, details: {}, capabilities };
    }
  }

  async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    return this.call(async () => {
      let info = await this.inspectContainer(spec.id);
      const sealed = sealedEnvNames(spec).length > 0;
      if (info) this.checkHolder(spec, info);
      if (!info) {
        const options = containerCreateOptions(spec, sealed ? await this.secrets.prepare(spec) : null);
        const pinned = pinnedImage(spec.definition.image);
        const progress = (line: string) => this.ctx.pullProgress?.({ owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload }, line);
        if (pinned) await ensurePinnedImage(this.pinnedImages, spec.workload, spec.owner, pinned, progress);
        else await ensureNamedImage(this.pinnedImages.registries, spec.workload, spec.definition.image, progress);
        await this.inOwnerNetwork(spec, () => this.docker.createContainer(options).catch((err: unknown) => {
          if (statusCodeOf(err) === 409) return; // created meanwhile by a concurrent ensure: start that one
          throw specErrorOf(spec.workload, err) ?? err;
        }));
        info = await this.inspectContainer(spec.id);
        if (!info) throw new Error(`container ${spec.id} was removed right after it was created`);
      }
      this.checkHolder(spec, info);
      const observed = observedOf(info);
      if (!observed) throw new Error(`container ${spec.id} does not read back as a zone workload`);
      await this.keepInOwnerNetwork(spec, info.NetworkSettings?.Networks ?? {});
      if (observed.state === 'paused') await this.docker.getContainer(spec.id).unpause();
      let held: HoldHandle | null = null;
      if (observed.state === 'created' || observed.state === 'exited') {
        if (sealed) await this.writeSecrets(spec);
        // A piped stdout is attached before the start, so that its reader gets the first byte too.
        if (spec.definition.stdout === 'pipe') held = await this.holdStdout(spec.id);
        await this.docker.getContainer(spec.id).start().catch((err: unknown) => {
          held?.drop();
          if (statusCodeOf(err) === 304) return; // already running: started by someone else, not held from its start
          throw specErrorOf(spec.workload, err) ?? err;
        });
      }
      const now = await this.inspect(spec.id).catch((err: unknown) => {
        held?.drop();
        throw err;
      });
      held?.started(now?.startedAt ?? null);
      if (!now) throw new Error(`container ${spec.id} was removed while it was being started`);
      return now;
    });
  }

  async stop(id: string, graceMs: number): Promise<void> {
    await this.call(() => this.docker.getContainer(id).stop({ t: Math.ceil(graceMs / 1000) }).catch(ignoreStatus(304, 404)));
  }

  async inspect(id: string): Promise<ObservedWorkload | null> {
    return this.call(async () => observedOf(await this.inspectContainer(id)));
  }

  async list(node: string): Promise<ObservedWorkload[]> {
    return this.call(async () => {
      // Taken first: an inspect made under a stream that was live before it started misses no event after.
      const session = this.events.liveSession();
      const summaries = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${node}`] } });
      const ours = summaries.filter((s) => identityOf(s.Labels)?.node === node)
        .map((s) => ({ summary: s, name: containerNameOf(s.Names?.[0] ?? '') }));
      this.listed.keepOnly(new Set(ours.flatMap((c) => c.name ?? [])));
      const observed = await Promise.all(ours.map(async ({ summary, name }) => {
        const known = name === null ? undefined : this.listed.recall(name, summary, session);
        if (known !== undefined) return known;
        const mark = this.listed.mark();
        const found = observedOf(await this.inspectContainer(summary.Id));
        if (name !== null) this.listed.remember(name, summary.Id, found, mark, session);
        return found;
      }));
      return observed.filter((o): o is ObservedWorkload => o !== null && o.node === node);
    });
  }

  async remove(id: string): Promise<void> {
    await this.call(async () => {
      const container = this.docker.getContainer(id);
      await container.stop({ t: Math.ceil((this.options.removeGraceMs ?? DEFAULT_REMOVE_GRACE_MS) / 1000) }).catch(ignoreStatus(304, 404));
      // Whose it is, for its owner's network once it is gone.
      const owner = await container.inspect().then((c) => identityOf(c.Config.Labels), () => null);
      // v: its anonymous volumes go with it; 409: a removal is already under way.
      await container.remove({ force: true, v: true }).catch(ignoreStatus(404, 409));
      this.held.get(id)?.stdout.destroy();
      this.held.delete(id);
      await this.secrets.remove(id);
      if (owner?.node === this.ctx.node) {
        await this.ownerNetworks.run(ownerNetworkName(owner.node, owner.owner), () => removeOwnerNetworkIfUnused(this.docker, owner.node, owner.owner));
      }
    });
  }

  watch(listener: (event: DriverEvent) => void): () => void {
    return this.events.subscribe(listener);
  }

  async logs(id: string, options: LogOptions): Promise<Readable> {
    return this.call(async () => {
      const raw: NodeJS.ReadableStream | Buffer = await (this.docker.getContainer(id).logs as (o: object) => Promise<NodeJS.ReadableStream | Buffer>)({
        follow: options.follow,
        stdout: true,
        stderr: true,
        tail: options.tail ?? 'all',
      });
      const source = Buffer.isBuffer(raw) ? Readable.from([raw]) : raw;
      const out = new PassThrough();
      this.docker.modem.demuxStream(source, out, out);
      source.on('end', () => out.end());
      source.on('error', (err: Error) => out.destroy(err));
      // A reader that stops reading stops the follow.
      out.on('close', () => (source as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.());
      return out;
    });
  }

  /**
   * With `replay`, stdout is the current incarnation's from its first byte: the stdout
   * ensure() attached before starting it (exact), else the container's log, then the
   * live stream. With `stdout: false` stdout carries nothing and ends when the attach does
   * (for a StdinOnce container, when it stops).
   */
  async attach(id: string, options: AttachOptions = {}): Promise<AttachedStreams> {
    return this.call(async () => {
      const stdin = options.stdin ?? true;
      const stdout = options.stdout ?? true;
      if (!stdout || !options.replay) return this.attachStdio(id, stdin, stdout);
      const held = this.held.get(id);
      if (!held) return this.attachReplaying(id, stdin);
      this.held.delete(id);
      // Taken out of the map: if the stdin attach fails, nobody else could ever let it go.
      const input = stdin ? await this.attachStdio(id, true, false).then((s) => s.stdin, (err: unknown) => {
        held.stdout.destroy();
        throw err;
      }) : refusingStdin();
      return { stdin: input, stdout: held.stdout, startedAt: await held.startedAt, exact: true };
    });
  }

  async exec(id: string, options: TerminalOptions): Promise<TerminalSession> {
    return this.call(() => execShell(this.docker, this.socketPath, id, options));
  }

  async usage(id: string): Promise<WorkloadUsage | null> {
    return this.call(() => containerUsage(this.docker, id));
  }

  /** Loads an image tar (`docker save` format) into dockerd; returns the references it brought. */
  async loadImage(path: string): Promise<string[]> {
    return this.call(() => loadImageFile(this.docker, path));
  }

  async close(): Promise<void> {
    this.events.stop();
    for (const held of this.held.values()) held.stdout.destroy();
    this.held.clear();
  }

  private async attachStdio(id: string, stdin: boolean, stdout: boolean): Promise<AttachedStreams> {
    const socket = await this.docker.getContainer(id).attach({ stream: true, stdin, stdout, stderr: false, hijack: true }) as Duplex;
    // No TTY, so stdout arrives framed; stderr is not requested, so no stderr frames come.
    const out = new FrameDemuxer(STDOUT_FRAME, { readableHighWaterMark: ATTACH_READ_AHEAD_BYTES });
    socket.pipe(out);
    socket.on('close', () => {
      if (!out.writableEnded) out.end();
    });
    socket.on('error', (err: Error) => out.destroy(err));
    // Without stdin, the reader owns the attach: when it gives up, the attach ends (a
    // stdout nobody reads would stall the container once Docker's buffer is full).
    if (!stdin) out.on('close', () => socket.destroy());
    return { stdin: stdin ? socket : refusingStdin(), stdout: out };
  }

  /**
   * Attaches stdout before a start and keeps it for attach(id, { replay: true }). Until
   * that reader comes, Docker buffers about 1 MiB, then the container waits on its
   * stdout as on a full pipe.
   */
  private async holdStdout(id: string): Promise<HoldHandle> {
    const { stdout } = await this.attachStdio(id, false, true);
    let started: (at: string | null) => void = () => {};
    const held: HeldStdout = { stdout, startedAt: new Promise((resolve) => (started = resolve)) };
    // An earlier incarnation's stdout nobody took is not taken any more.
    this.held.get(id)?.stdout.destroy();
    this.held.set(id, held);
    return {
      started,
      drop: () => {
        if (this.held.get(id) === held) this.held.delete(id);
        held.stdout.destroy();
        started(null);
      },
    };
  }

  /**
   * The current incarnation's stdout without a held attach (the appliance restarted since
   * the start): the live stream attached first, then the log of this incarnation read, so
   * nothing falls between them; bytes written in that instant can come twice, and the
   * log keeps only valid UTF-8 and the last `max-size * max-file` bytes. An exited
   * container gives its log only.
   */
  private async attachReplaying(id: string, stdin: boolean): Promise<AttachedStreams> {
    const before = await this.inspect(id);
    if (!before) throw new Error(`container ${id} does not exist: nothing to attach to`);
    if (before.state === 'created') return { ...(await this.attachStdio(id, stdin, true)), startedAt: null, exact: true };
    let live = before.state !== 'exited' ? await this.attachStdio(id, stdin, true) : null;
    const closeLive = () => {
      live?.stdin.destroy();
      live?.stdout.destroy();
      live = null;
    };
    const after = live ? await this.inspect(id).catch((err: unknown) => {
      closeLive();
      throw err;
    }) : before;
    if (!after || after.startedAt !== before.startedAt) {
      closeLive();
      throw new Error(`container ${id} was restarted or removed while it was being attached; attach again`);
    }
    // It ended meanwhile: an attach after the end would wait for the next start; its log is whole.
    if (after.state === 'exited') closeLive();
    const window = after.startedAt ? replayWindow({ startedAt: after.startedAt, finishedAt: after.finishedAt, running: live !== null }) : { since: '0' };
    const raw = await (this.docker.getContainer(id).logs as (o: object) => Promise<Buffer>)({ follow: false, stdout: true, stderr: false, ...window })
      .catch((err: unknown) => {
        closeLive();
        throw err;
      });
    const replayed = Readable.from([raw]).pipe(new FrameDemuxer());
    const out = new PassThrough();
    replayed.pipe(out, { end: false });
    replayed.on('error', (err: Error) => out.destroy(err));
    replayed.on('end', () => {
      if (!live) return out.end();
      live.stdout.on('error', (err: Error) => out.destroy(err));
      live.stdout.pipe(out);
    });
    out.on('close', () => live?.stdout.destroy());
    return { stdin: live?.stdin ?? refusingStdin(), stdout: out, startedAt: before.startedAt, exact: false };
  }

  /** Runs `fn` (a create, or nothing) once the owner's network exists, if `spec` has one. */
  private async inOwnerNetwork(spec: WorkloadSpec, fn: () => Promise<unknown>): Promise<void> {
    const network = ownerNetworkOf(spec);
    if (!network) {
      await fn();
      return;
    }
    await this.ownerNetworks.runShared(network, async () => {
      await this.ensureOwnerNetwork(network, spec);
      await fn();
    });
  }

  /**
   * ensureOwnerNetwork, one at a time per network: the containers of an owner are made
   * side by side, and two of them must not both find the network missing and make it
   * (Docker refuses the second, or keeps two of one name). Callers that come while one
   * is under way share its answer.
   */
  private ensureOwnerNetwork(network: string, spec: WorkloadSpec): Promise<string> {
    let ensuring = this.ensuringNetworks.get(network);
    if (!ensuring) {
      ensuring = ensureOwnerNetwork(this.docker, spec).finally(() => this.ensuringNetworks.delete(network));
      this.ensuringNetworks.set(network, ensuring);
    }
    return ensuring;
  }

  /**
   * Keeps a container in its owner's network alone, running or not (no restart): one on
   * other networks (made before owner networks, on Docker's shared bridge; or joined to
   * another by hand) is moved; one whose network was removed by hand (a stopped one
   * still names the old network's id, and would not start) is joined to it made again.
   */
  private async keepInOwnerNetwork(spec: WorkloadSpec, joined: Record<string, { NetworkID?: string }>): Promise<void> {
    const network = ownerNetworkOf(spec);
    if (!network) return;
    await this.ownerNetworks.runShared(network, async () => {
      const id = await this.ensureOwnerNetwork(network, spec);
      // A container never started names its networks only (an empty id), resolved at its start.
      const entry = joined[network];
      const current = entry !== undefined && (!entry.NetworkID || entry.NetworkID === id);
      // By name: the stale entry is dropped through the network made again under that name.
      const leave = Object.keys(joined).filter((name) => name !== network || !current);
      for (const name of leave) await this.docker.getNetwork(name).disconnect({ Container: spec.id, Force: true }).catch(ignoreStatus(404));
      if (!current) await this.docker.getNetwork(network).connect({ Container: spec.id });
    });
  }

  /** Throws unless the container's labels record `spec`'s identity: one of another is never adopted. */
  private checkHolder(spec: WorkloadSpec, info: ContainerInspect): void {
    const holder = identityOf(info.Config.Labels);
    if (!holder || !sameWorkload(holder, spec)) throw nameClash(spec, 'container', holder);
  }

  /** Validated inspect data, or null when there is no such container. */
  /** Before each start: a tmpfs forgets its files at a reboot, and the image's user may own them. */
  private async writeSecrets(spec: WorkloadSpec): Promise<void> {
    await this.secrets.prepare(spec);
    const container = this.docker.getContainer(spec.id);
    // The image's user, as the container was created with it.
    const user = (await container.inspect()).Config.User ?? '';
    let account;
    try {
      account = await accountOf(user, (path) => readContainerFile(container, path));
    } catch (err) {
      throw new WorkloadSpecError(spec.workload, 'image', `cannot own its secrets' files: ${(err as Error).message}`);
    }
    await this.secrets.write(spec, account);
  }

  private async inspectContainer(id: string) {
    try {
      return parseContainerInspect(await this.docker.getContainer(id).inspect());
    } catch (err) {
      if (statusCodeOf(err) === 404) return null;
      throw err;
    }
  }

  /** Runs an engine call, turning "dockerd not reachable" into EngineUnavailableError. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw engineErrorOf(err, this.socketPath);
    }
  }
}

function ignoreStatus(...codes: number[]) {
  return (err: unknown): void => {
    const status = statusCodeOf(err);
    if (status === undefined || !codes.includes(status)) throw err;
  };
}
