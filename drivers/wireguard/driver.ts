// The WireGuard network driver: per blueprint network, a network namespace with a
// bridge for the blueprint's containers and a WireGuard interface to the other nodes.
//
// The interface is created in the node's own namespace (the underlay) and then moved
// into the network namespace: WireGuard keeps its UDP socket where it was created, so
// the encrypted traffic uses the node's addresses while the clear traffic stays in the
// network namespace. wireguard-go (when the kernel has no WireGuard) runs in the
// underlay, serves the moved tun device and keeps its UAPI socket in
// /var/run/wireguard/IFACE.sock, which `wg` finds from any namespace.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { DriverContext, Fingerprint } from '../contract.ts';
import { WorkloadSpecError } from '../contract.ts';
import { gatewayOf, isHostIn, normalizeCidr, prefixLength } from './addresses.ts';
import type {
  ContainerAttachment, NetworkDriver, NetworkSpec, ObservedNetwork, WireguardImplementation,
} from './contract.ts';
import { NetworkSpecError } from './contract.ts';
import { commandLine, processRuns, stopProcess } from '../processes.ts';
import { CommandError, inNamespace, runCommand, throughPipe } from './exec.ts';
import { ip, namedNamespace, readAddresses, readLinks, readRoutes } from './iproute.ts';
import { wireguardPublicKey } from './keys.ts';
import { wireguardKeyField } from '../../blueprints/sealed-fields.ts';
import { KeyedLock } from '../keyed-lock.ts';
import { BRIDGE, containerInterface, containerLink, VM_BRIDGE_PREFIX, vmBridgeAlias, vmLinks, wireguardInterface } from './names.ts';
import {
  containerRoutes, desiredNetwork, parseWireguardDump, peerArgs, planNetwork,
  type ObservedState, type Step, type WireguardDevice,
} from './plan.ts';
import { StateFiles, type NetworkState } from './state.ts';

export interface WireguardDriverOptions {
  /**
   * The named network namespace that is the node's underlay (where WireGuard's UDP
   * socket lives). Absent: the namespace the appliance runs in, as in production.
   */
  underlayNamespace?: string;
  /** How long a new interface may take to appear. */
  startTimeoutMs?: number;
  /** A process in the network namespace libvirtd (and so the VMs' taps) lives in; default: libvirtd's, from its pid file. */
  vmNamespacePid?: number;
}

const UAPI_DIR = '/var/run/wireguard';
const LIBVIRTD_PID_FILE = '/run/libvirtd.pid';

export class WireguardDriver implements NetworkDriver {
  readonly kind = 'network' as const;
  private readonly state: StateFiles;
  private readonly underlay: string | null;
  private implementation: Promise<WireguardImplementation> | null = null;
  /** One operation per network at a time: ensure/remove/attach of one id never interleave. */
  private readonly queues = new KeyedLock();

  constructor(private readonly ctx: DriverContext, private readonly options: WireguardDriverOptions = {}) {
    this.state = new StateFiles(join(ctx.dataDir, 'networks'));
    this.underlay = options.underlayNamespace ? namedNamespace(options.underlayNamespace) : null;
  }

  async fingerprint(): Promise<Fingerprint> {
    try {
      const version = (await runCommand(['wg', '--version'])).trim();
      const implementation = await this.detectImplementation();
      if (implementation === 'wireguard-go') await runCommand(['wireguard-go', '--version']);
      return { kind: this.kind, available: true, version, details: { implementation } };
    } catch (e) {
      return { kind: this.kind, available: false, reason: (e as Error).message, details: {} };
    }
  }

  /** Kernel WireGuard when a throwaway namespace can hold a wireguard link, else wireguard-go. */
  private detectImplementation(): Promise<WireguardImplementation> {
    this.implementation ??= runCommand(['unshare', '--net', 'ip', 'link', 'add', 'zwprobe', 'type', 'wireguard'])
      .then(() => 'kernel' as const, () => 'wireguard-go' as const);
    return this.implementation;
  }

  ensure(spec: NetworkSpec): Promise<ObservedNetwork> {
    return this.serialized(spec.id, async () => {
      const desired = desiredNetwork(spec.definition, this.publicKeyOf(spec));
      let state = await this.state.read(spec.id) ?? {
        id: spec.id, node: spec.node, owner: spec.owner, blueprint: spec.blueprint, network: spec.network,
        interface: wireguardInterface(spec.id), implementation: await this.detectImplementation(), pid: null,
      };
      await this.state.write(state);
      const steps = planNetwork(desired, await this.observe(state));
      for (const step of steps) state = await this.execute(step, spec, state);
      return this.describe(state);
    });
  }

  async inspect(id: string): Promise<ObservedNetwork | null> {
    const state = await this.state.read(id);
    return state && this.describe(state);
  }

  async list(): Promise<ObservedNetwork[]> {
    const found = await Promise.all((await this.state.ids()).map((id) => this.inspect(id)));
    return found.filter((n): n is ObservedNetwork => n !== null);
  }

  remove(id: string): Promise<void> {
    return this.serialized(id, async () => {
      const state = await this.state.read(id);
      if (state) await this.stopInterface(state);
      const vmNs = `/proc/${await this.vmNamespacePid()}/ns/net`;
      // This network's VM bridges are found by their alias; the rule goes with the last bridge of any.
      const bridges = (await readLinks(vmNs)).filter((l) => l.name.startsWith(VM_BRIDGE_PREFIX));
      const mine = bridges.filter((l) => l.alias === vmBridgeAlias(id));
      for (const bridge of mine) await ip(vmNs, 'link', 'del', bridge.name);
      if (bridges.length === mine.length) await this.allowBridgedVmFrames(vmNs, false);
      if (existsSync(namedNamespace(id))) await runCommand(['ip', 'netns', 'del', id]);
      await this.state.remove(id);
    });
  }

  attachContainer(spec: NetworkSpec, container: ContainerAttachment): Promise<void> {
    return this.serialized(spec.id, async () => {
      const n = spec.definition;
      const gateway = this.checkMemberIp(spec, container.workload, container.ip);
      const ns = namedNamespace(spec.id);
      if (!existsSync(ns)) throw new Error(`network ${spec.network} (${spec.id}) does not exist on this node yet: ensure it first`);

      const link = containerLink(container.ip);
      const inside = containerInterface(spec.id);
      const containerNs = `/proc/${container.pid}/ns/net`;
      const address = `${container.ip}/${prefixLength(n.subnet)}`;
      if ((await readLinks(ns)).some((l) => l.name === link)) {
        const attached = await readAddresses(containerNs, inside).catch((): string[] => []);
        if (attached.includes(address)) return;
        await ip(ns, 'link', 'del', link); // a leftover of an earlier container with this IP
      }
      await ip(ns, 'link', 'add', link, 'type', 'veth', 'peer', 'name', inside, 'netns', String(container.pid));
      await ip(ns, 'link', 'set', link, 'master', BRIDGE, 'up');
      await ip(containerNs, 'addr', 'add', address, 'dev', inside);
      await ip(containerNs, 'link', 'set', inside, 'up');
      await ip(containerNs, 'link', 'set', 'lo', 'up');
      for (const route of containerRoutes(n)) await ip(containerNs, 'route', 'replace', route, 'via', gateway, 'dev', inside);
    });
  }

  attachVm(spec: NetworkSpec, vm: { workload: string; ip: string }): Promise<void> {
    return this.serialized(spec.id, async () => {
      this.checkMemberIp(spec, vm.workload, vm.ip);
      const ns = namedNamespace(spec.id);
      if (!existsSync(ns)) throw new Error(`network ${spec.network} (${spec.id}) does not exist on this node yet: ensure it first`);
      const links = vmLinks(spec.id, vm.ip);
      const vmPid = await this.vmNamespacePid();
      const vmNs = `/proc/${vmPid}/ns/net`;
      const host = await readLinks(vmNs);
      if (!host.some((l) => l.name === links.bridge)) {
        await ip(vmNs, 'link', 'add', links.bridge, 'type', 'bridge');
        await ip(vmNs, 'link', 'set', links.bridge, 'alias', vmBridgeAlias(spec.id));
      }
      if (!host.some((l) => l.name === links.hostEnd)) {
        // A network end left from an earlier pair would block the new one.
        if ((await readLinks(ns)).some((l) => l.name === links.networkEnd)) await ip(ns, 'link', 'del', links.networkEnd);
        await ip(ns, 'link', 'add', links.networkEnd, 'type', 'veth', 'peer', 'name', links.hostEnd, 'netns', String(vmPid));
      }
      await ip(ns, 'link', 'set', links.networkEnd, 'master', BRIDGE, 'up');
      await ip(vmNs, 'link', 'set', links.hostEnd, 'master', links.bridge, 'up');
      await ip(vmNs, 'link', 'set', links.bridge, 'up');
      await this.allowBridgedVmFrames(vmNs, true);
    });
  }

  /**
   * Frames between a VM and its network cross a host bridge, and br_netfilter hands
   * bridged IPv4 to the host's iptables, where Docker's FORWARD policy is DROP (a
   * per-bridge nf_call_iptables 0 cannot override the host-wide sysctl). One rule lets
   * frames that stay within VM bridges through; it goes with the last VM bridge.
   */
  private async allowBridgedVmFrames(vmNs: string, allow: boolean): Promise<void> {
    const rule = ['FORWARD', '-i', `${VM_BRIDGE_PREFIX}+`, '-o', `${VM_BRIDGE_PREFIX}+`, '-j', 'ACCEPT', '-m', 'comment', '--comment', 'zone: VMs on their networks'];
    const present = await runCommand(inNamespace(vmNs, ['iptables', '-C', ...rule])).then(() => true, () => false);
    if (allow && !present) await runCommand(inNamespace(vmNs, ['iptables', '-I', ...rule]));
    if (!allow && present) await runCommand(inNamespace(vmNs, ['iptables', '-D', ...rule]));
  }

  /** libvirtd's pid (its taps live in its namespace); this process's when libvirtd is not running. */
  private async vmNamespacePid(): Promise<number> {
    if (this.options.vmNamespacePid) return this.options.vmNamespacePid;
    const pid = Number((await readFile(LIBVIRTD_PID_FILE, 'utf8').catch(() => '')).trim());
    return Number.isSafeInteger(pid) && pid > 0 && existsSync(`/proc/${pid}/ns/net`) ? pid : process.pid;
  }

  /** Throws unless `ip` may be a member's address in the network; returns the network's gateway. */
  private checkMemberIp(spec: NetworkSpec, workload: string, memberIp: string): string {
    const { subnet } = spec.definition;
    const field = `networks/${spec.network}/ip`;
    const gateway = gatewayOf(subnet);
    if (!isHostIn(subnet, memberIp)) throw new WorkloadSpecError(workload, field, `${memberIp} is not a host address of subnet ${subnet}`);
    if (memberIp === gateway) throw new WorkloadSpecError(workload, field, `${memberIp} is the node's own address in ${subnet}; use another`);
    return gateway;
  }

  detachContainer(spec: NetworkSpec, containerIp: string): Promise<void> {
    return this.serialized(spec.id, async () => {
      const ns = namedNamespace(spec.id);
      const link = containerLink(containerIp);
      if (existsSync(ns) && (await readLinks(ns)).some((l) => l.name === link)) await ip(ns, 'link', 'del', link);
    });
  }

  private serialized<T>(id: string, work: () => Promise<T>): Promise<T> {
    return this.queues.run(id, work);
  }

  /** The clear private key of the network, opened only to be piped into `wg`. */
  private privateKeyOf(spec: NetworkSpec): string | null {
    const sealed = spec.definition.wireguard?.privateKey;
    if (!sealed) return null;
    let key: string;
    try {
      key = this.ctx.openSecret(sealed, { owner: spec.owner, blueprint: spec.blueprint, field: wireguardKeyField(spec.network) }).trim();
    } catch (err) {
      // The reason says where the key is bound or that it is another node's; it never holds the key.
      throw new NetworkSpecError(spec.network, 'wireguard/privateKey', err instanceof Error ? err.message : 'does not open with this node\'s box key');
    }
    try {
      wireguardPublicKey(key);
    } catch {
      throw new NetworkSpecError(spec.network, 'wireguard/privateKey', 'opens, but is not a WireGuard private key (32 bytes in base64)');
    }
    return key;
  }

  private publicKeyOf(spec: NetworkSpec): string | null {
    const key = this.privateKeyOf(spec);
    return key && wireguardPublicKey(key);
  }

  private async observe(state: NetworkState): Promise<ObservedState> {
    const ns = namedNamespace(state.id);
    if (!existsSync(ns)) {
      return { namespace: false, bridgeAddresses: null, interfaceAlive: false, interfaceUp: false, device: null, routes: [] };
    }
    const links = await readLinks(ns);
    const wg = links.find((l) => l.name === state.interface);
    const interfaceAlive = !!wg && (state.implementation === 'kernel' || (state.pid !== null && await isWireguardGo(state.pid, state.interface)));
    return {
      namespace: true,
      bridgeAddresses: links.some((l) => l.name === BRIDGE) ? await readAddresses(ns, BRIDGE) : null,
      interfaceAlive,
      interfaceUp: wg?.up ?? false,
      device: interfaceAlive ? await this.readDevice(state) : null,
      routes: interfaceAlive ? await readRoutes(ns, state.interface) : [],
    };
  }

  private async readDevice(state: NetworkState): Promise<WireguardDevice> {
    return parseWireguardDump(await this.wg(state, ['show', state.interface, 'dump']));
  }

  /** `wg` in the network namespace: a kernel interface is only visible there; wireguard-go's socket from anywhere. */
  private wg(state: NetworkState, args: string[], input?: string): Promise<string> {
    const command = inNamespace(namedNamespace(state.id), ['wg', ...args]);
    return input === undefined ? runCommand(command) : runCommand(throughPipe(command), { input });
  }

  private async execute(step: Step, spec: NetworkSpec, state: NetworkState): Promise<NetworkState> {
    const ns = namedNamespace(state.id);
    const iface = state.interface;
    switch (step.op) {
      case 'create-namespace':
        await runCommand(['ip', 'netns', 'add', state.id]);
        await ip(ns, 'link', 'set', 'lo', 'up');
        // The namespace routes between the containers' bridge and the WireGuard interface.
        await runCommand(inNamespace(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']));
        return state;
      case 'create-bridge':
        await ip(ns, 'link', 'add', BRIDGE, 'type', 'bridge');
        await ip(ns, 'link', 'set', BRIDGE, 'up');
        return state;
      case 'set-bridge-address':
        for (const old of step.replaces) await ip(ns, 'addr', 'del', old, 'dev', BRIDGE);
        await ip(ns, 'addr', 'replace', step.address, 'dev', BRIDGE);
        return state;
      case 'create-interface':
        return this.createInterface(state);
      case 'delete-interface':
        await this.stopInterface(state);
        return this.saved({ ...state, pid: null });
      case 'set-interface':
        // The key goes to wg on a pipe: never on a command line, never in a file.
        await this.wg(state, ['set', iface, 'listen-port', String(step.listenPort), 'private-key', '/dev/stdin'], `${this.privateKeyOf(spec) ?? ''}\n`);
        return state;
      case 'set-peer':
        await this.wg(state, ['set', iface, ...peerArgs(step.peer)]);
        return state;
      case 'remove-peer':
        await this.wg(state, ['set', iface, 'peer', step.publicKey, 'remove']);
        return state;
      case 'interface-up':
        await ip(ns, 'link', 'set', iface, 'up');
        return state;
      case 'add-route':
        await ip(ns, 'route', 'replace', step.cidr, 'dev', iface);
        return state;
      case 'remove-route':
        await ip(ns, 'route', 'del', normalizeCidr(step.cidr), 'dev', iface);
        return state;
    }
  }

  /** A fresh interface in the underlay, moved into the network namespace. */
  private async createInterface(state: NetworkState): Promise<NetworkState> {
    await this.stopInterface(state);
    const iface = state.interface;
    let pid: number | null = null;
    if (state.implementation === 'kernel') {
      await ip(this.underlay, 'link', 'add', iface, 'type', 'wireguard');
    } else {
      pid = await this.startWireguardGo(state);
    }
    await this.saved({ ...state, pid });
    await ip(this.underlay, 'link', 'set', iface, 'netns', state.id);
    return { ...state, pid };
  }

  private async startWireguardGo(state: NetworkState): Promise<number> {
    const iface = state.interface;
    await rm(join(UAPI_DIR, `${iface}.sock`), { force: true }); // a stale socket of a dead process
    await mkdir(this.state.dir, { recursive: true, mode: 0o700 });
    const logPath = join(this.state.dir, `${state.id}.log`);
    const log = await open(logPath, 'a', 0o600);
    // Detached: the network outlives an appliance restart, which adopts it by PID.
    const [file, ...args] = inNamespace(this.underlay, ['wireguard-go', '-f', iface]) as [string, ...string[]];
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
    });
    await log.close();
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.once('error', () => undefined);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`wireguard-go for ${iface} did not start (is it installed?)`);
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 10_000);
    for (;;) {
      const links = await readLinks(this.underlay);
      if (links.some((l) => l.name === iface) && existsSync(join(UAPI_DIR, `${iface}.sock`))) return pid;
      const code = await Promise.race([exited, delay(50).then(() => 'running' as const)]);
      if (code !== 'running' || Date.now() > deadline) {
        if (code === 'running') process.kill(pid, 'SIGKILL');
        const tail = (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
        throw new Error(`wireguard-go for ${iface} ${code === 'running' ? 'did not create its interface in time' : `exited (${code})`}: ${tail || 'no log'}`);
      }
    }
  }

  /** Stops the interface's process and deletes the link wherever it is left. */
  private async stopInterface(state: NetworkState): Promise<void> {
    const pid = state.pid;
    if (pid !== null && await isWireguardGo(pid, state.interface)) await stopProcess(pid, () => isWireguardGo(pid, state.interface), 5000, 20);
    const ns = namedNamespace(state.id);
    for (const where of existsSync(ns) ? [ns, this.underlay] : [this.underlay]) {
      await ip(where, 'link', 'del', state.interface).catch((e: unknown) => {
        if (!(e instanceof CommandError)) throw e; // absent: nothing to delete
      });
    }
  }

  private async saved(state: NetworkState): Promise<NetworkState> {
    await this.state.write(state);
    return state;
  }

  private async describe(state: NetworkState): Promise<ObservedNetwork> {
    const observed = await this.observe(state);
    return {
      id: state.id, node: state.node, owner: state.owner, blueprint: state.blueprint, network: state.network,
      namespace: state.id,
      interface: state.interface,
      implementation: state.implementation,
      pid: state.pid,
      up: observed.interfaceAlive && observed.interfaceUp,
      publicKey: observed.device?.publicKey ?? null,
      listenPort: observed.device?.listenPort ?? null,
      peers: observed.device?.peers ?? [],
    };
  }
}

/** The PID runs wireguard-go for `iface` (and is not a zombie): PIDs are reused. */
export async function isWireguardGo(pid: number, iface: string): Promise<boolean> {
  const args = await commandLine(pid);
  return args.some((a) => a.endsWith('wireguard-go')) && args.includes(iface) && await processRuns(pid);
}
