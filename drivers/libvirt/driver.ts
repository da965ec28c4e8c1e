// The libvirt driver: workloads of kind `vm` through @unraid/libvirt. Pure translation is in
// spec.ts, domain-xml.ts, guest-init.ts and observed.ts; this file is the I/O.
//
// Files per domain live in <dataDir>/libvirt/domains/<id>/ (initrd, console log) and go
// with remove(); a disk-image VM's root disk is a volume the engine gives it, and stays.
// The console socket is in <dataDir>/libvirt/sock/ (named by 128 bits of a hash of the
// domain's name: unix socket paths are limited to 107 bytes). qemu runs as its own user
// (libvirt's DAC), so these folders are traversable by others but not listable.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Socket } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import Docker from 'dockerode';
import { Hypervisor, type Domain } from '@unraid/libvirt';
import type {
  AttachedStreams, AttachOptions, Capabilities, Driver, DriverContext, DriverEvent, Fingerprint, ImageKind, LocalImages, LogOptions, ObservedWorkload, TerminalSession, WorkloadSpec, WorkloadUsage,
} from '../contract.ts';
import { EngineUnavailableError, WorkloadSpecError } from '../contract.ts';
import { envField } from '../../blueprints/sealed-fields.ts';
import { probeAccelerator, type AcceleratorProbe } from './accelerator.ts';
import { attachConsole, consoleLogStream, readFileEnd, requestStop, serialTerminal } from './console.ts';
import { domainXml, parseDomainXml, type Accelerator, type DomainBoot } from './domain-xml.ts';
import { isNoDomain, isStateRace, libvirtMessageOf, unavailable } from './errors.ts';
import { exitCodeFromConsole, guestInitScript } from './guest-init.ts';
import { exists, imageRootfs, ImageNotBootableError, ImageNotFoundError, writeWorkloadInitrd } from './initramfs.ts';
import { DomainStates, observedOf, observedStateOf, type DomainSnapshot, type PollView } from './observed.ts';
import { checkDiskBoot, checkVmSpec, DOMAIN_ID, imageKindOf, KERNEL_CMDLINE, vcpusOf, vmNics, vmRootDisk, vmVolumes } from './spec.ts';
import { connectPort, holdStdoutPort } from './stdio-ports.ts';
import { DomainPoller } from './watch.ts';
import { guestModules, probeZoneShare, VIRTIO_MODULES, ZONE_MODULES, ZONE_TAG, type GuestModule, type ZoneShareProbe } from './zone-share.ts';
import { KeyedLock } from '../keyed-lock.ts';
import { refusingStdin } from '../streams.ts';
import { ensurePinnedImage, type PinnedImageContext } from '../docker/pinned.ts';
import { dockerdLoads } from '../images/loaded.ts';
import { pinnedImage } from '../../blueprints/image-ref.ts';
import { DiskStore } from './disk-store.ts';
import { createOverlay } from '../volumes/disk-image.ts';
import { isNameOf, NAME_HASH_HEX, nameClash, sameWorkload } from '../names.ts';
import { runCommand } from '../../lib/exec.ts';


export interface LibvirtDriverOptions {
  /** libvirt connection URI; qemu:///system by default. */
  uri?: string;
  /** The VM kernel for container images (scripts/setup-host caches it). */
  kernel?: string;
  /** dockerd's socket, where container images are exported from. */
  dockerSocket?: string;
  /** Skips the probe (benchmarks, or an operator who knows). */
  accelerator?: Accelerator;
  /** The qemu binary probed for virtio-9p (/zone in VMs); the one libvirt runs for x86_64 by default. */
  qemu?: string;
  /** The grace period remove() gives a running VM before destroying it. */
  removeGraceMs?: number;
  /** How often watch() polls the domains. */
  pollMs?: number;
}

const DEFAULTS = {
  uri: 'qemu:///system',
  kernel: '/var/cache/zone/kernel/vmlinuz',
  dockerSocket: '/var/run/docker.sock',
  removeGraceMs: 5000,
  pollMs: 1000,
};
const UNIX_PATH_MAX = 107;
const CONSOLE_SCAN_BYTES = 64 * 1024;

/** The e1000 driver of the cached kernel (beside it), and where the guest init finds it. */
const NIC_MODULE = 'modules/kernel/drivers/net/ethernet/intel/e1000/e1000.ko';
const GUEST_NIC_MODULE = '/lib/zone/e1000.ko';
/** virtio_blk after the virtio transport, for a guest given block volumes as disks. */
export const DISK_MODULES = [...VIRTIO_MODULES, ...guestModules(['drivers/block/virtio_blk.ko'])];
/** virtio_console after the virtio transport, for a guest whose stdin or stdout is piped (virtio-serial ports). */
const PORT_MODULES = [...VIRTIO_MODULES, ...guestModules(['drivers/char/virtio_console.ko'])];
/** How often a stdout that carries nothing (not piped, or not asked for) looks whether its incarnation ended. */
const ENDED_POLL_MS = 500;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The piped stdio ports of an incarnation ensure() started, held until attach() takes them. */
interface HeldStdio {
  stdin: Socket | null;
  stdout: Readable | null;
  startedAt: string | null;
}

// One probe per kernel per process: it boots a guest, and the answer does not change.
const probes = new Map<string, Promise<AcceleratorProbe>>();

export class LibvirtDriver implements Driver {
  readonly kind = 'vm';
  /**
   * attach() joins the command's stdio: its virtio-serial ports when piped (stdio-ports.ts),
   * which needs the kernel's virtio_console module beside it, else the serial console,
   * which is its stdio then. console() is the serial console. mount: /zone over virtio-9p
   * where qemu and the kernel's modules have it.
   */
  readonly capabilities: Readonly<Capabilities>;
  /** Why attach is off, for the fingerprint; null when on. */
  private readonly attachProblem: string | null;
  private readonly uri: string;
  private readonly kernel: string;
  private readonly root: string;
  private readonly docker: Docker;
  private readonly pinnedImages: PinnedImageContext;
  /** The node's VM image store: pinned disks fetched from the grid. */
  private readonly disks: DiskStore;
  private readonly poller: DomainPoller;
  private hypervisor: Hypervisor | null = null;
  private connecting: Promise<Hypervisor> | null = null;
  private readonly locks = new KeyedLock();
  private readonly setupProblem: string | null;
  /** By domain name: the ports of the incarnation ensure() started, until attach() takes them. */
  private readonly held = new Map<string, HeldStdio>();
  /** By domain name: the startedAt last recorded in its folder (see startedAtOf). */
  private readonly startedAts = new Map<string, string>();
  private readonly zoneShare: ZoneShareProbe;

  constructor(private readonly ctx: DriverContext, private readonly options: LibvirtDriverOptions = {}) {
    this.uri = options.uri ?? DEFAULTS.uri;
    this.kernel = options.kernel ?? DEFAULTS.kernel;
    this.root = join(ctx.dataDir, 'libvirt');
    this.docker = new Docker({ socketPath: options.dockerSocket ?? DEFAULTS.dockerSocket });
    this.pinnedImages = {
      docker: this.docker, source: ctx.images, dir: join(this.root, 'fetched'), fetches: new KeyedLock(), loaded: dockerdLoads(ctx.dataDir),
      registries: { docker: this.docker, registries: ctx.registries ?? [], pulls: new KeyedLock() },
    };
    this.disks = new DiskStore(join(this.root, 'disk-images'), ctx.images);
    this.poller = new DomainPoller(() => this.pollView(), options.pollMs ?? DEFAULTS.pollMs);
    this.zoneShare = probeZoneShare({ kernel: this.kernel, ...(options.qemu ? { qemu: options.qemu } : {}) });
    // Reported by fingerprint() and ensure() rather than thrown here: the appliance still starts.
    const portModule = join(dirname(this.kernel), PORT_MODULES.at(-1)!.host);
    this.attachProblem = existsSync(portModule) ? null : `no ${portModule} for the VMs' stdio ports (scripts/setup-host caches it with the kernel): VMs cannot be pipe ends`;
    this.capabilities = { attach: this.attachProblem === null, console: true, mount: this.zoneShare.available };
    this.setupProblem = this.socketPath('x').length > UNIX_PATH_MAX
      ? `dataDir ${ctx.dataDir} is too long for the VM console sockets (unix socket paths are limited to ${UNIX_PATH_MAX} bytes)`
      : null;
  }

  /** The disks it fetched from the grid (container images it loaded into dockerd are the docker driver's to collect). */
  get localImages(): LocalImages {
    return this.disks;
  }

  async fingerprint(): Promise<Fingerprint & { capabilities: Capabilities }> {
    const capabilities = { ...this.capabilities };
    if (this.setupProblem) return { kind: this.kind, available: false, reason: this.setupProblem, details: { uri: this.uri }, capabilities };
    let host: Awaited<ReturnType<Hypervisor['nodeGetInfo']>>;
    try {
      host = await this.call((hv) => hv.nodeGetInfo());
    } catch (err) {
      return { kind: this.kind, available: false, reason: libvirtMessageOf(err), details: { uri: this.uri }, capabilities };
    }
    const probe = await this.accelerator();
    const kernelPresent = await exists(this.kernel);
    const versions = await runCommand(['virsh', '-c', this.uri, 'version'], { timeoutMs: 5000 }).catch(() => '');
    const libvirtVersion = /Using library: libvirt (\S+)/.exec(versions)?.[1];
    const qemuVersion = /Running hypervisor: QEMU (\S+)/.exec(versions)?.[1];
    const details: Record<string, string | number | boolean> = {
      uri: this.uri,
      accelerator: probe.accelerator,
      acceleratorReason: probe.reason,
      hostCpus: host.cpus,
      hostMemoryBytes: host.memory * 1024,
      kernel: this.kernel,
      kernelPresent,
      zoneMount: this.zoneShare.available,
      ...(this.zoneShare.reason ? { zoneMountReason: this.zoneShare.reason } : {}),
    };
    if (qemuVersion) details.qemuVersion = qemuVersion;
    if (this.attachProblem) details.attachProblem = this.attachProblem;
    return { kind: this.kind, available: true, ...(libvirtVersion ? { version: libvirtVersion } : {}), details, capabilities };
  }

  async ensure(spec: WorkloadSpec): Promise<ObservedWorkload> {
    checkVmSpec(spec);
    if (this.setupProblem) throw new Error(this.setupProblem);
    return this.exclusive(spec.id, () => this.call(async (hv) => {
      let domain = await this.lookup(hv, spec.id);
      if (domain) {
        // A domain recording another identity (or none) is never adopted.
        const facts = parseDomainXml(await domain.getXMLDesc());
        const holder = facts.metadata;
        if (!holder || !sameWorkload(holder, spec)) throw nameClash(spec, 'libvirt domain', holder);
        const snap = await this.snapshot(domain, spec.id);
        if (!snap) throw new Error(`libvirt domain ${spec.id} does not read back as a zone workload`);
        if (snap.state === DomainStates.PAUSED || snap.state === DomainStates.PMSUSPENDED) {
          await domain.resume().catch(ignoreRace);
        } else if (observedStateOf(snap.state, snap.hasRun) !== 'running') {
          // /zone came or went since it was defined (the pseudokernel's mount): its init and XML follow,
          // so a guest never gets the bare directory under an absent mount.
          const reshare = facts.shareSource !== this.shareOf(spec);
          const boot = await this.prepareFiles(spec, false, reshare);
          if (reshare) domain = await hv.domainDefineXML(await this.definition(spec, boot, await domain.getUUIDString()));
          await this.start(spec, domain);
          await this.holdStdio(spec);
        }
      } else {
        const boot = await this.prepareFiles(spec, true);
        domain = await hv.domainDefineXML(await this.definition(spec, boot));
        await this.start(spec, domain);
        await this.holdStdio(spec);
      }
      const observed = await this.snapshot(domain, spec.id);
      if (!observed) throw new Error(`libvirt domain ${spec.id} lost its zone metadata`);
      const held = this.held.get(spec.id);
      if (held && held.startedAt === null) held.startedAt = observed.startedAt;
      return observedOf(observed);
    }));
  }

  async stop(id: string, graceMs: number): Promise<void> {
    if (!DOMAIN_ID.test(id)) return;
    await this.exclusive(id, () => this.call(async (hv) => {
      const domain = await this.lookup(hv, id);
      if (domain && (await this.snapshot(domain, id).catch(nullWhenGone)) === null && (await this.lookup(hv, id))) {
        throw new Error(`libvirt domain ${id} is not managed by zone; it is left alone`);
      }
      await this.stopDomain(hv, id, graceMs);
    }));
  }

  async inspect(id: string): Promise<ObservedWorkload | null> {
    if (!DOMAIN_ID.test(id)) return null;
    return this.call(async (hv) => {
      const domain = await this.lookup(hv, id);
      const snap = domain ? await this.snapshot(domain, id).catch(nullWhenGone) : null;
      return snap ? observedOf(snap) : null;
    });
  }

  async list(node: string): Promise<ObservedWorkload[]> {
    return (await this.snapshots()).filter((s) => s.metadata.node === node).map(observedOf);
  }

  async remove(id: string): Promise<void> {
    if (!DOMAIN_ID.test(id)) return;
    await this.exclusive(id, () => this.call(async (hv) => {
      const domain = await this.lookup(hv, id);
      if (domain) {
        const snap = await this.snapshot(domain, id).catch(nullWhenGone);
        if (snap === null && (await this.lookup(hv, id))) throw new Error(`libvirt domain ${id} is not managed by zone; it is left alone`);
        await this.stopDomain(hv, id, this.options.removeGraceMs ?? DEFAULTS.removeGraceMs);
        await domain.undefine().catch((err: unknown) => { if (!isNoDomain(err)) throw err; });
      }
      this.dropHeld(id);
      this.startedAts.delete(id);
      await rm(this.domainDir(id), { recursive: true, force: true });
      for (const channel of ['console', 'ctl', 'stdin', 'stdout'] as const) await rm(this.socketPath(id, channel), { force: true });
    }));
  }

  watch(listener: (event: DriverEvent) => void): () => void {
    return this.poller.subscribe(listener);
  }

  async logs(id: string, options: LogOptions): Promise<Readable> {
    if (!DOMAIN_ID.test(id)) throw new Error(`no VM ${id}`);
    const path = this.consoleLogPath(id);
    const present = await exists(path);
    if (!present && !(await this.inspect(id))) throw new Error(`no VM ${id}`);
    return consoleLogStream(path, options);
  }

  /**
   * A VM's piped stdin and stdout are its virtio-serial ports: those ensure() held from the
   * start (stdout exact from its first byte, with or without `replay`), else stdin is
   * connected now; a piped stdout not held since the start (the appliance restarted) cannot
   * be replayed and is refused. A stream not piped, or not asked for, carries nothing and
   * ends with the incarnation. A VM with no piped stream has the console as its stdio.
   */
  async attach(id: string, options: AttachOptions = {}): Promise<AttachedStreams> {
    // After any ensure() under way: the ports it holds are known by their incarnation once it returns.
    return this.exclusive(id, () => this.attachStdio(id, options));
  }

  private async attachStdio(id: string, options: AttachOptions): Promise<AttachedStreams> {
    const observed = await this.inspect(id);
    if (!observed) throw new Error(`no VM ${id}`);
    if (observed.state !== 'running') throw new Error(`VM ${id} is ${observed.state}: its stdio can be attached only while it runs`);
    const ports = { stdin: await exists(this.socketPath(id, 'stdin')), stdout: await exists(this.socketPath(id, 'stdout')) };
    if (!ports.stdin && !ports.stdout) return attachConsole(this.socketPath(id));
    const wanted = { stdin: options.stdin ?? true, stdout: options.stdout ?? true };
    let held = this.held.get(id);
    if (held && held.startedAt !== observed.startedAt) {
      this.dropHeld(id);
      held = undefined;
    }
    if (wanted.stdout && ports.stdout && !held?.stdout) {
      throw new Error(`VM ${id}'s piped stdout was not held since its start (the appliance restarted while it ran): its output cannot be replayed exactly; its next start is relayed whole`);
    }
    let stdin: Writable = refusingStdin();
    if (wanted.stdin && ports.stdin) {
      stdin = held?.stdin ?? await connectPort(this.socketPath(id, 'stdin'));
      if (held) held.stdin = null;
    }
    let stdout: Readable;
    if (wanted.stdout && held?.stdout) {
      stdout = held.stdout;
      held.stdout = null;
    } else {
      stdout = this.untilEnded(id, observed.startedAt);
    }
    if (held && !held.stdin && !held.stdout) this.held.delete(id);
    return { stdin, stdout, startedAt: observed.startedAt, exact: true };
  }

  async console(id: string): Promise<TerminalSession> {
    const observed = await this.inspect(id);
    if (observed?.state !== 'running') throw new Error(`VM ${id} is ${observed?.state ?? 'not there'}: its console opens only while it runs`);
    return serialTerminal(this.consoleLogPath(id), this.socketPath(id));
  }

  async usage(id: string): Promise<WorkloadUsage | null> {
    if (!DOMAIN_ID.test(id)) return null;
    return this.call(async (hv) => {
      const info = await (await this.lookup(hv, id))?.getInfo();
      if (!info || observedStateOf(info.state, true) !== 'running') return null;
      // libvirt counts CPU time in ns and memory in KiB.
      return { cpuSeconds: info.cpuTime / 1e9, memoryBytes: info.memory * 1024 };
    });
  }

  async growDisk(id: string, path: string, sizeBytes: number): Promise<void> {
    if (!DOMAIN_ID.test(id)) return;
    await this.exclusive(id, () => this.call(async (hv) => {
      const domain = await this.lookup(hv, id);
      const snap = domain ? await this.snapshot(domain, id).catch(nullWhenGone) : null;
      if (!snap || observedStateOf(snap.state, snap.hasRun) !== 'running') return;
      // qemu holds the image (qemu-img cannot resize it now): qemu grows it and the guest's virtio disk sees the new size.
      await runCommand(['virsh', '-c', this.uri, 'blockresize', id, path, `${sizeBytes}B`], { timeoutMs: 60_000 }).catch((err: unknown) => {
        throw new Error(`libvirt domain ${id}: growing its disk ${path} to ${sizeBytes} bytes: ${(err as Error).message}`, { cause: err });
      });
    }));
  }

  async close(): Promise<void> {
    this.poller.stop();
    for (const id of [...this.held.keys()]) this.dropHeld(id);
    const hv = this.hypervisor;
    this.hypervisor = null;
    if (hv) await hv.connectClose().catch(() => undefined);
  }

  // --- paths

  private domainDir(id: string): string {
    return join(this.root, 'domains', id);
  }

  private consoleLogPath(id: string): string {
    return join(this.domainDir(id), 'console.log');
  }

  private socketPath(id: string, channel: 'console' | 'ctl' | 'stdin' | 'stdout' = 'console'): string {
    return join(this.root, 'sock', `${createHash('sha256').update(id).digest('hex').slice(0, NAME_HASH_HEX)}.${channel}`);
  }

  // --- libvirt

  private async connection(): Promise<Hypervisor> {
    if (this.hypervisor) return this.hypervisor;
    this.connecting ??= (async () => {
      const hv = new Hypervisor({ uri: this.uri });
      try {
        await hv.connectOpen();
      } catch (err) {
        throw unavailable(this.uri, err);
      }
      this.hypervisor = hv;
      return hv;
    })().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  /** Runs `fn` on the connection; a failure on a dead connection drops it and becomes EngineUnavailableError. */
  private async call<T>(fn: (hv: Hypervisor) => Promise<T>): Promise<T> {
    const hv = await this.connection();
    try {
      return await fn(hv);
    } catch (err) {
      if (err instanceof EngineUnavailableError || err instanceof WorkloadSpecError || isNoDomain(err)) throw err;
      if (await hv.connectGetHostname().then(() => true, () => false)) throw err;
      if (this.hypervisor === hv) {
        this.hypervisor = null;
        void hv.connectClose().catch(() => undefined);
      }
      throw unavailable(this.uri, err);
    }
  }

  private async lookup(hv: Hypervisor, id: string): Promise<Domain | null> {
    try {
      return await hv.domainLookupByName(id);
    } catch (err) {
      if (isNoDomain(err)) return null;
      throw err;
    }
  }

  /** Our view of one domain; null when it is not ours (no valid zone metadata, or metadata of a workload of another name). */
  private async snapshot(domain: Domain, name: string): Promise<DomainSnapshot | null> {
    const facts = parseDomainXml(await domain.getXMLDesc());
    if (!facts.metadata || facts.name !== name || !isNameOf(name, facts.metadata)) return null;
    const info = await domain.getInfo();
    const domainId = await domain.getID().catch(() => null);
    const active = observedStateOf(info.state, true) !== 'exited';
    const log = this.consoleLogPath(name);
    const logStat = await stat(log).catch(() => null);
    const { text } = logStat ? await readFileEnd(log, CONSOLE_SCAN_BYTES) : { text: '' };
    const pidStat = active ? await stat(`/run/libvirt/qemu/${name}.pid`).catch(() => null) : null;
    return {
      ...await this.startedAtOf(name, pidStat?.mtime ?? null, logStat !== null),
      metadata: facts.metadata,
      name,
      state: info.state,
      domainId: active && typeof domainId === 'number' && domainId > 0 ? domainId : null,
      hasRun: (logStat?.size ?? 0) > 0,
      exitCode: exitCodeFromConsole(text),
      finishedAt: !active && logStat ? logStat.mtime.toISOString() : null,
    };
  }

  /**
   * The incarnation: when qemu started (its pid file's time) while it runs, recorded beside
   * the domain's files so that an exited one keeps it (as a container does): a pipe's
   * consumer commits the input of the incarnation that exited, by this id.
   */
  private async startedAtOf(name: string, running: Date | null, hasRun: boolean): Promise<{ startedAt: string | null }> {
    const file = join(this.domainDir(name), 'started-at');
    if (running) {
      const startedAt = running.toISOString();
      if (this.startedAts.get(name) !== startedAt) {
        await writeFile(file, startedAt).catch(() => undefined);
        this.startedAts.set(name, startedAt);
      }
      return { startedAt };
    }
    if (!hasRun) return { startedAt: null };
    const recorded = await readFile(file, 'utf8').catch(() => '');
    return { startedAt: ISO_TIME.test(recorded) ? recorded : null };
  }

  private async snapshots(): Promise<DomainSnapshot[]> {
    return this.call(async (hv) => {
      const found: DomainSnapshot[] = [];
      for (const domain of await hv.connectListAllDomains()) {
        // A domain may vanish between the listing and the look: then it is simply not there.
        const snap = await domain.getName().then((name) => this.snapshot(domain, name)).catch(nullWhenGone);
        if (snap) found.push(snap);
      }
      return found;
    });
  }

  private async pollView(): Promise<Map<string, PollView>> {
    const view = new Map<string, PollView>();
    for (const s of await this.snapshots()) {
      if (s.metadata.node !== this.ctx.node) continue;
      view.set(s.name, { state: observedStateOf(s.state, s.hasRun), domainId: s.domainId, exitCode: s.exitCode });
    }
    return view;
  }

  private async start(spec: WorkloadSpec, domain: Domain): Promise<void> {
    try {
      await domain.create();
    } catch (err) {
      if (isStateRace(err)) return;
      const message = libvirtMessageOf(err);
      if (/memory/i.test(message) && !/permission/i.test(message)) throw new WorkloadSpecError(spec.workload, 'resources.memory', `libvirt could not start the VM: ${message}`);
      throw err;
    }
  }

  /** Holds the piped ports of the incarnation just started (an older one's nobody took are let go). */
  private async holdStdio(spec: WorkloadSpec): Promise<void> {
    const { stdin, stdout } = spec.definition;
    this.dropHeld(spec.id);
    if (!stdin && !stdout) return;
    const held: HeldStdio = { stdin: null, stdout: null, startedAt: null };
    this.held.set(spec.id, held);
    try {
      if (stdin) {
        held.stdin = await connectPort(this.socketPath(spec.id, 'stdin'));
        // A write after the VM stopped fails through its callback and the close; never an unhandled error.
        held.stdin.on('error', () => undefined);
      }
      if (stdout) held.stdout = await holdStdoutPort(this.socketPath(spec.id, 'stdout'), this.consoleLogPath(spec.id));
    } catch (err) {
      this.dropHeld(spec.id);
      throw err;
    }
  }

  private dropHeld(id: string): void {
    const held = this.held.get(id);
    this.held.delete(id);
    held?.stdin?.destroy();
    held?.stdout?.destroy();
  }

  /** A stream that carries nothing and ends once incarnation `startedAt` of `id` does (or its reader lets go). */
  private untilEnded(id: string, startedAt: string | null): Readable {
    const out = new PassThrough();
    const timer = setInterval(() => {
      void this.inspect(id).then((o) => {
        if (o?.state !== 'running' || o.startedAt !== startedAt) out.end();
      }, () => undefined);
    }, ENDED_POLL_MS);
    out.on('close', () => clearInterval(timer));
    out.on('end', () => clearInterval(timer));
    return out;
  }

  private async stopDomain(hv: Hypervisor, id: string, graceMs: number): Promise<void> {
    const domain = await this.lookup(hv, id);
    if (!domain) return;
    const running = async (): Promise<boolean> => {
      const info = await domain.getInfo().catch((err: unknown) => { if (isNoDomain(err)) return null; throw err; });
      return info !== null && info.state !== DomainStates.SHUTOFF && info.state !== DomainStates.CRASHED;
    };
    if (!(await running())) return;
    if (graceMs > 0) {
      // ACPI for guests with their own OS; the control line for our guest init (which has no ACPI daemon).
      await domain.shutdown().catch(ignoreRace);
      await requestStop(this.socketPath(id, 'ctl'));
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && (await running())) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (await running()) await domain.destroy().catch(ignoreRace);
  }

  // --- files

  /**
   * The boot files of `spec`; `fresh` rebuilds them (a new definition), `freshInit` only the
   * initrd (/zone came or went), otherwise only missing ones are made.
   */
  private async prepareFiles(spec: WorkloadSpec, fresh: boolean, freshInit = fresh): Promise<DomainBoot> {
    const dir = this.domainDir(spec.id);
    await this.ensureFolders(dir);
    const def = spec.definition;
    const overlay = join(dir, 'disk.qcow2');
    const initrd = join(dir, 'initrd.cpio.gz');
    try {
      // A disk image by path: its root disk is a volume (an overlay over the image) that outlives the domain.
      if (imageKindOf(def.image) === 'disk') return { kind: 'disk', path: vmRootDisk(spec), format: 'qcow2' };
      // A pinned image: a disk from the grid boots an overlay in the domain's folder. A
      // domain restarted on the files it has does not ask the grid again.
      const pinned = pinnedImage(def.image);
      const kind = !fresh && (await exists(overlay)) ? 'disk' : !fresh && (await exists(initrd)) ? 'container' : await this.bootKindOf(spec);
      if (kind === 'disk' && pinned) {
        if (fresh || !(await exists(overlay))) {
          checkDiskBoot(spec);
          const base = await this.disks.ensure(spec.workload, spec.owner, pinned);
          await rm(overlay, { force: true });
          await createOverlay(base, overlay, def.diskBytes);
        }
        return { kind: 'disk', path: overlay, format: 'qcow2' };
      }
      if (!(await exists(this.kernel))) {
        throw new Error(`the VM kernel ${this.kernel} is missing (scripts/setup-host caches it)`);
      }
      if (freshInit || !(await exists(initrd))) {
        // A pinned container image is fetched from the grid and checked like a container's, then booted by its ID.
        if (pinned) {
          const progress = (line: string) => this.ctx.pullProgress?.({ owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload }, line);
          await ensurePinnedImage(this.pinnedImages, spec.workload, spec.owner, pinned, progress);
        }
        const image = await imageRootfs(this.docker, pinned?.digest ?? def.image, join(this.root, 'images'));
        const argv = def.command ?? image.defaultArgv;
        if (argv.length === 0) throw new WorkloadSpecError(spec.workload, 'command', `image ${def.image} has no default command; give one`);
        const env: Record<string, string> = { ...image.env };
        for (const [name, value] of Object.entries(def.env)) {
          env[name] = value.startsWith('sealed:') ? this.ctx.openSecret(value, { owner: spec.owner, blueprint: spec.blueprint, field: envField(spec.workload, name) }) : value;
        }
        const nics = vmNics(spec);
        const nicModule = join(dirname(this.kernel), NIC_MODULE);
        if (nics.length > 0 && !(await exists(nicModule))) {
          throw new Error(`the VM network driver ${nicModule} is missing (scripts/setup-host caches it with the kernel)`);
        }
        const piped = def.stdin === 'pipe' || def.stdout === 'pipe';
        const virtioModules = [...((def.disks ?? []).length > 0 ? DISK_MODULES : []), ...(piped ? PORT_MODULES : [])]
          .map((m) => ({ ...m, host: join(dirname(this.kernel), m.host) }));
        for (const m of virtioModules) {
          if (!(await exists(m.host))) throw new Error(`the VM virtio driver ${m.host} is missing (scripts/setup-host caches it with the kernel)`);
        }
        // Keyed by the guest path: a module several lists need is loaded once, at its first place.
        const zone = this.shareOf(spec) !== null;
        const zoneModules: GuestModule[] = zone ? [...VIRTIO_MODULES, ...ZONE_MODULES].map((m) => ({ ...m, host: join(dirname(this.kernel), m.host) })) : [];
        const modules: Record<string, string> = {
          ...(nics.length > 0 ? { [GUEST_NIC_MODULE]: nicModule } : {}),
          ...Object.fromEntries([...virtioModules, ...zoneModules].map((m) => [m.guest, m.host])),
        };
        let script: string;
        try {
          script = guestInitScript({
            workload: spec.workload, argv, env, workdir: def.workdir ?? image.workdir,
            ...(nics.length > 0 ? { nics } : {}),
            ...(Object.keys(modules).length > 0 ? { modules: Object.keys(modules) } : {}),
            ...(def.disks?.length ? { disks: def.disks.length } : {}),
            ...(piped ? { stdio: { stdin: def.stdin === 'pipe', stdout: def.stdout === 'pipe' } } : {}),
            ...(zone ? { zoneTag: ZONE_TAG } : {}),
          });
        } catch (err) {
          throw new WorkloadSpecError(spec.workload, /environment/.test(libvirtMessageOf(err)) ? 'env' : 'command', libvirtMessageOf(err));
        }
        await writeWorkloadInitrd(image.archive, script, initrd, modules);
      }
      return { kind: 'kernel', kernel: this.kernel, initrd, cmdline: KERNEL_CMDLINE };
    } catch (err) {
      if (err instanceof ImageNotFoundError || err instanceof ImageNotBootableError) {
        throw new WorkloadSpecError(spec.workload, 'image', err.message);
      }
      throw err;
    }
  }

  /** The host directory shared as the guest's /zone: the spec's mount, where this host can share it. */
  private shareOf(spec: WorkloadSpec): string | null {
    return this.capabilities.mount && spec.zoneMount ? spec.zoneMount : null;
  }

  private async definition(spec: WorkloadSpec, boot: DomainBoot, uuid?: string): Promise<string> {
    const share = this.shareOf(spec);
    return domainXml({
      name: spec.id,
      ...(uuid ? { uuid } : {}),
      accelerator: (await this.accelerator()).accelerator,
      vcpus: vcpusOf(spec),
      memoryBytes: spec.definition.memoryBytes,
      boot,
      consoleLog: this.consoleLogPath(spec.id),
      consoleSocket: this.socketPath(spec.id),
      controlSocket: this.socketPath(spec.id, 'ctl'),
      bridges: vmNics(spec).map(({ bridge, mac }) => ({ bridge, mac })),
      volumes: vmVolumes(spec),
      stdio: {
        ...(spec.definition.stdin ? { stdin: this.socketPath(spec.id, 'stdin') } : {}),
        ...(spec.definition.stdout ? { stdout: this.socketPath(spec.id, 'stdout') } : {}),
      },
      ...(share ? { share: { source: share, tag: ZONE_TAG, readOnly: false } } : {}),
      metadata: { node: spec.node, owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload, specHash: spec.specHash },
    });
  }

  /**
   * Whether `spec`'s image boots as a disk or as a container image: a path is a disk; a
   * pinned image is what the owner stored in the grid (with no grid, what the node holds).
   */
  private async bootKindOf(spec: WorkloadSpec): Promise<ImageKind> {
    const pinned = pinnedImage(spec.definition.image);
    if (!pinned) return imageKindOf(spec.definition.image);
    if (!this.ctx.images) return (await this.disks.holds(pinned.digest)) ? 'disk' : 'container';
    const kind = await this.ctx.images.kindOf(spec.owner, pinned.digest);
    if (!kind) throw new WorkloadSpecError(spec.workload, 'image', `image ${spec.definition.image} is not in the owner's grid image store (push it with \`zone image push\`)`);
    return kind;
  }

  private async ensureFolders(domainDir: string): Promise<void> {
    await mkdir(domainDir, { recursive: true, mode: 0o711 });
    await mkdir(dirname(this.socketPath('x')), { recursive: true });
    // qemu runs as libvirt's qemu user: it walks these folders to its files and binds its socket.
    for (const dir of [this.root, join(this.root, 'domains'), domainDir]) await chmod(dir, 0o711);
    await chmod(dirname(this.socketPath('x')), 0o1733);
    for (let dir = dirname(this.root); ; dir = dirname(dir)) {
      if (((await stat(dir)).mode & 0o001) === 0) {
        throw new Error(`qemu cannot reach the VM files: ${dir} is not searchable by others (chmod o+x ${dir})`);
      }
      if (dir === dirname(dir)) break;
    }
  }

  private accelerator(): Promise<AcceleratorProbe> {
    if (this.options.accelerator) return Promise.resolve({ accelerator: this.options.accelerator, reason: 'set by the operator' });
    let probe = probes.get(this.kernel);
    if (!probe) {
      probe = probeAccelerator({ kernel: this.kernel });
      probes.set(this.kernel, probe);
    }
    return probe;
  }

  /** Serialises ensure/stop/remove per domain so two calls never race on one domain's files. */
  private exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

function ignoreRace(err: unknown): void {
  if (!isStateRace(err) && !isNoDomain(err)) throw err;
}

function nullWhenGone(err: unknown): null {
  if (isNoDomain(err)) return null;
  throw err;
}
