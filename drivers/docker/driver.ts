// The Docker driver: workloads of kind `container` through dockerode. The translation
// is in spec.ts (create options) and observed.ts (inspect -> ObservedWorkload); this
// file is the I/O.
import { PassThrough, Readable, type Duplex } from 'node:stream';
import Docker from 'dockerode';
import type {
  AttachedStreams, Driver, DriverContext, DriverEvent, Fingerprint, LogOptions, ObservedWorkload, WorkloadSpec,
} from '../contract.ts';
import { WorkloadSpecError } from '../contract.ts';
import { dockerMessageOf, engineErrorOf, isUnreachable, specErrorOf, statusCodeOf } from './errors.ts';
import { DockerEventFeed } from './events.ts';
import { ensureImage, loadImageFile } from './images.ts';
import { identityOf, observedOf, parseContainerInspect } from './observed.ts';
import { LABELS, containerCreateOptions } from './spec.ts';

export interface DockerDriverOptions {
  /** dockerd's API socket; /var/run/docker.sock by default. */
  socketPath?: string;
  /** A registry (`host[:port]`) to pull missing images from; without one, images must be local. */
  registry?: string;
  /** The grace period `remove()` gives a running container before killing it. */
  removeGraceMs?: number;
}

const DEFAULT_SOCKET = '/var/run/docker.sock';
const DEFAULT_REMOVE_GRACE_MS = 10_000;

export class DockerDriver implements Driver {
  readonly kind = 'container';
  private readonly docker: Docker;
  private readonly socketPath: string;
  private readonly events: DockerEventFeed;

  constructor(private readonly ctx: DriverContext, private readonly options: DockerDriverOptions = {}) {
    this.socketPath = options.socketPath ?? DEFAULT_SOCKET;
    this.docker = new Docker({ socketPath: this.socketPath });
    this.events = new DockerEventFeed(this.docker, {
      node: ctx.node,
      socketPath: this.socketPath,
      oomKilled: async (id) => (await this.inspectContainer(id).catch(() => null))?.State.OOMKilled ?? false,
    });
  }

  async fingerprint(): Promise<Fingerprint> {
    try {
      const [version, info] = await Promise.all([this.docker.version(), this.docker.info() as Promise<Record<string, unknown>>]);
      const details: Record<string, string | number | boolean> = { apiVersion: version.ApiVersion, os: version.Os, arch: version.Arch };
      for (const [key, field] of [['kernelVersion', 'KernelVersion'], ['storageDriver', 'Driver'], ['cgroupDriver', 'CgroupDriver'], ['cgroupVersion', 'CgroupVersion']] as const) {
        const value = info[field];
        if (typeof value === 'string') details[key] = value;
      }
      return { kind: this.kind, available: true, version: version.Version, details };
    } catch (err) {
      const reason = isUnreachable(err) ? `dockerd not reachable at ${this.socketPath}: ${dockerMessageOf(err)}` : `dockerd answered with an error: ${dockerMessageOf(err)}`;
      return { kind: this.kind, available: false, reason, details: {} };
    }
  }

  async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    return this.call(async () => {
      let info = await this.inspectContainer(spec.id);
      if (!info) {
        const options = containerCreateOptions(spec, (sealed) => this.ctx.openSecret(sealed));
        await ensureImage(this.docker, spec.workload, spec.definition.image, this.options.registry);
        await this.docker.createContainer(options).catch((err: unknown) => {
          if (statusCodeOf(err) === 409) return; // created meanwhile by a concurrent ensure: start that one
          throw specErrorOf(spec.workload, err) ?? err;
        });
        info = await this.inspectContainer(spec.id);
        if (!info) throw new Error(`container ${spec.id} was removed right after it was created`);
      }
      const observed = observedOf(info);
      if (!observed || observed.node !== spec.node || observed.owner !== spec.owner || observed.blueprint !== spec.blueprint || observed.workload !== spec.workload) {
        throw new WorkloadSpecError(spec.workload, 'id', `a container named ${spec.id} exists and is not this workload's (remove it by hand if it is stale)`);
      }
      if (observed.state === 'paused') await this.docker.getContainer(spec.id).unpause();
      if (observed.state === 'created' || observed.state === 'exited') {
        await this.docker.getContainer(spec.id).start().catch((err: unknown) => {
          if (statusCodeOf(err) === 304) return; // already running
          throw specErrorOf(spec.workload, err) ?? err;
        });
      }
      const now = await this.inspect(spec.id);
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
      const summaries = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${node}`] } });
      const ids = summaries.filter((s) => identityOf(s.Labels)?.node === node).map((s) => s.Id);
      const observed = await Promise.all(ids.map(async (id) => observedOf(await this.inspectContainer(id))));
      return observed.filter((o): o is ObservedWorkload => o !== null && o.node === node);
    });
  }

  async remove(id: string): Promise<void> {
    await this.call(async () => {
      const container = this.docker.getContainer(id);
      await container.stop({ t: Math.ceil((this.options.removeGraceMs ?? DEFAULT_REMOVE_GRACE_MS) / 1000) }).catch(ignoreStatus(304, 404));
      // v: its anonymous volumes go with it; 409: a removal is already under way.
      await container.remove({ force: true, v: true }).catch(ignoreStatus(404, 409));
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

  async attach(id: string): Promise<AttachedStreams> {
    return this.call(async () => {
      const socket = await this.docker.getContainer(id).attach({ stream: true, stdin: true, stdout: true, stderr: false, hijack: true });
      const stdout = new PassThrough();
      // No TTY, so stdout arrives framed; stderr is not requested, so no stderr frames come.
      this.docker.modem.demuxStream(socket, stdout, stdout);
      socket.on('end', () => stdout.end());
      socket.on('close', () => stdout.end());
      socket.on('error', (err: Error) => stdout.destroy(err));
      return { stdin: socket as Duplex, stdout };
    });
  }

  /** Loads an image tar (`docker save` format) into dockerd; returns the references it brought. */
  async loadImage(path: string): Promise<string[]> {
    return this.call(() => loadImageFile(this.docker, path));
  }

  async close(): Promise<void> {
    this.events.stop();
  }

  /** Validated inspect data, or null when there is no such container. */
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
