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
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  NetworkSpecError, WorkloadSpecError, type ContainerAttachment, type DriverContext, type Fingerprint, type NetworkDriver, type NetworkIdentity,
  type NetworkSpec, type ObservedNetwork, type VmLink, type WireguardImplementation,
} from '../contract.ts';
import { gatewayOf, isHostIn, normalizeCidr, prefixLength, routeDevice } from './addresses.ts';
import { commandLine, processRuns, stopProcess } from '../../lib/processes.ts';
import { CommandError, inNamespace, runCommand, throughPipe } from '../../lib/exec.ts';
import { ip, namedNamespace, readAddresses, readLinks, readRouteTable, readRoutes } from './iproute.ts';
import { wireguardPublicKey } from './keys.ts';
import { wireguardKeyField } from '../../blueprints/sealed-fields.ts';
import { KeyedLock } from '../keyed-lock.ts';
import {
  BRIDGE, containerInterface, containerLink, isVmBridgeOf, linkAlias, networkAlias, VM_BRIDGE_PREFIX, vmBridgeAlias, vmLinks, wireguardInterface,
} from './names.ts';
import {
  containerMtu, containerRoutes, describeDrift, desiredNetwork, endpointAddress, parseWireguardDump, peerArgs, planNetwork, wireguardMtu,
  type DesiredNetwork, type DeviceState, type DeviceStep, type WireguardDevice,
} from './device-plan.ts';
import { StateFiles, type NetworkState } from './state.ts';
import { detectImplementation, raiseReceiveBufferDefault, RECEIVE_BUFFER_DEFAULT, WIREGUARD_GO_RECEIVE_BUFFER } from './implementation.ts';

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
  /** Succeeds when the kernel has WireGuard; default: a wireguard link made in a throwaway namespace. */
  probeKernel?: () => Promise<unknown>;
  /** The file of the host's default socket receive buffer, raised for wireguard-go; default: /proc/sys/net/core/rmem_default. */
  receiveBufferDefault?: string;
  /** How long `list()` may answer from its last full look at a network (see `glance`); default 60 s. */
  observeMs?: number;
  /** The clock of `observeMs`; default: the monotonic one. */
  now?: () => number;
}

const UAPI_DIR = '/var/run/wireguard';
const LIBVIRTD_PID_FILE = '/run/libvirtd.pid';
/** Candidate WireGuard interface names tried before giving up (each taken one is a 48-bit clash). */
const INTERFACE_ATTEMPTS = 16;
const OBSERVE_MS = 60_000;

/** A full look at a network, kept for `list()`: valid while no operation on it began or ended since (`generation`). */
interface Look {
  generation: number;
  at: number;
  observed: ObservedNetwork;
}

const uapiSocket = (iface: string) => join(UAPI_DIR, `${iface}.sock`);

export class WireguardDriver implements NetworkDriver {
  readonly kind = 'network' as const;
  private readonly state: StateFiles;
  private readonly underlay: string | null;
  private implementation: Promise<WireguardImplementation> | null = null;
  /** One operation per network at a time: ensure/remove/attach of one id never interleave. */
  private readonly queues = new KeyedLock();
  /** Per network, bumped when an operation on it begins and ends: a look that spans one is not kept. */
  private readonly generations = new Map<string, number>();
  private readonly looks = new Map<string, Look>();
  /** Per network, what its last ensure made it (public values only): a full look that sees otherwise reports drift. */
  private readonly applied = new Map<string, DesiredNetwork>();

  constructor(private readonly ctx: DriverContext, private readonly options: WireguardDriverOptions = {}) {
    this.state = new StateFiles(join(ctx.dataDir, 'networks'));
    this.underlay = options.underlayNamespace ? namedNamespace(options.underlayNamespace) : null;
  }

  async fingerprint(): Promise<Fingerprint> {
    try {
      const version = (await runCommand(['wg', '--version'])).trim();
      const implementation = await this.detectImplementation();
      if (implementation === 'kernel') return { kind: this.kind, available: true, version, details: { implementation } };
      await runCommand(['wireguard-go', '--version']);
      const receiveBuffer = Number((await readFile(this.receiveBufferDefault, 'utf8').catch(() => '')).trim()) || 0;
      return { kind: this.kind, available: true, version, details: { implementation, receiveBuffer } };
    } catch (e) {
      return { kind: this.kind, available: false, reason: (e as Error).message, details: {} };
    }
  }

  /** Kernel WireGuard when the probe succeeds, else wireguard-go; probed once. */
  private detectImplementation(): Promise<WireguardImplementation> {
    this.implementation ??= detectImplementation(this.options.probeKernel);
    return this.implementation;
  }

  private get receiveBufferDefault(): string {
    return this.options.receiveBufferDefault ?? RECEIVE_BUFFER_DEFAULT;
  }

  ensure(spec: NetworkSpec): Promise<ObservedNetwork> {
    return this.serialized(spec.id, async () => {
      const desired = desiredNetwork(spec.definition, this.publicKeyOf(spec), await this.interfaceMtu(spec));
      const recorded = await this.state.read(spec.id);
      if (recorded && !sameNetwork(recorded, spec)) throw clash(spec, `its state file ${this.state.path(spec.id)} records ${describeNetwork(recorded)}`);
      await this.checkNamespaceOwner(spec, recorded !== null);
      let state = recorded ?? {
        id: spec.id, node: spec.node, owner: spec.owner, blueprint: spec.blueprint, network: spec.network,
        interface: await this.allocateInterface(spec.id), implementation: await this.detectImplementation(), pid: null,
      };
      await this.state.write(state);
      const steps = planNetwork(desired, await this.observe(state));
      for (const step of steps) state = await this.execute(step, spec, state);
      this.applied.set(spec.id, desired);
      return this.describe(state);
    });
  }

  /** A full look (`ip` and `wg`), always: asked for one network, not by every pass. */
  async inspect(id: string): Promise<ObservedNetwork | null> {
    const state = await this.state.read(id);
    return state && this.describe(state);
  }

  /** What the reconciler's every pass asks: answered from `glance`, so a steady node starts no process for it. */
  async list(): Promise<ObservedNetwork[]> {
    const found = await Promise.all((await this.state.ids()).map((id) => this.glance(id)));
    return found.filter((n): n is ObservedNetwork => n !== null);
  }

  /**
   * The network as its last full look saw it, while that look is younger than
   * `observeMs`, no operation on the network began or ended since, and what can be
   * checked without a child process still holds: the namespace is there and the
   * recorded wireguard-go runs (it exits when its interface is deleted). Else a full
   * look: `ip` and `wg` are child processes, and each spawn (a fork of this process)
   * stalls the event loop, 20-100 ms on a loaded machine (BENCHMARKS.md, pipes), so a
   * pass every 5 s spent 0.2-0.8 s of every pipe transfer's time on them. What only a
   * full look sees (a kernel interface deleted, a link set down or a peer changed by
   * hand) is seen within `observeMs`.
   */
  private async glance(id: string): Promise<ObservedNetwork | null> {
    const state = await this.state.read(id);
    if (!state) return null;
    const generation = this.generations.get(id) ?? 0;
    const look = this.looks.get(id);
    const fresh = look !== undefined && look.generation === generation && this.now() - look.at < (this.options.observeMs ?? OBSERVE_MS);
    if (fresh && look.observed.pid === state.pid && await this.stillRuns(state)) return look.observed;
    const at = this.now();
    const observed = await this.describe(state);
    if ((this.generations.get(id) ?? 0) === generation) this.looks.set(id, { generation, at, observed });
    return observed;
  }

  /** The namespace exists and the recorded wireguard-go (if any) runs: read from /var/run and /proc, no child process. */
  private async stillRuns(state: NetworkState): Promise<boolean> {
    if (!existsSync(namedNamespace(state.id))) return false;
    return state.pid === null || await isWireguardGo(state.pid, state.interface);
  }

  private now(): number {
    return this.options.now?.() ?? performance.now();
  }

  remove(id: string): Promise<void> {
    return this.serialized(id, async () => {
      const state = await this.state.read(id);
      const other = state && await this.namespaceOwner(id);
      if (state && other && other !== networkAlias(state)) {
        // Someone else's namespace under our name: ours is forgotten, theirs left alone.
        await this.state.remove(id);
        throw new Error(`network namespace ${id} is recorded as ${other}, not as ${describeNetwork(state)}: it is left alone`);
      }
      if (state) await this.stopInterface(state);
      const vmNs = `/proc/${await this.vmNamespacePid()}/ns/net`;
      // This network's VM bridges are found by their alias; the rule goes with the last bridge of any.
      const bridges = (await readLinks(vmNs)).filter((l) => l.name.startsWith(VM_BRIDGE_PREFIX));
      const mine = bridges.filter((l) => isVmBridgeOf(l.alias, id));
      for (const bridge of mine) await ip(vmNs, 'link', 'del', bridge.name);
      if (bridges.length === mine.length) await this.allowBridgedVmFrames(vmNs, false);
      if (state && existsSync(namedNamespace(id))) await runCommand(['ip', 'netns', 'del', id]);
      await this.state.remove(id);
      this.applied.delete(id);
    });
  }

  /**
   * Refuses a namespace of this id that is not this network's: one whose bridge's alias
   * names another network, or one this driver has no state file for (made by someone
   * else). A bridge of ours without its alias (made by an older appliance) gets it.
   */
  private async checkNamespaceOwner(spec: NetworkSpec, recorded: boolean): Promise<void> {
    const ns = namedNamespace(spec.id);
    if (!existsSync(ns)) return;
    const owner = await this.namespaceOwner(spec.id);
    if (owner !== null && owner !== networkAlias(spec)) throw clash(spec, `its network namespace's bridge ${BRIDGE} says ${owner}`);
    if (!recorded) throw clash(spec, `network namespace ${spec.id} exists, made by someone else (no state file here${owner === null ? ', no identity on its bridge' : ''})`);
    if (owner === null && (await readLinks(ns)).some((l) => l.name === BRIDGE)) await ip(ns, 'link', 'set', BRIDGE, 'alias', networkAlias(spec));
  }

  /** The alias of the namespace's bridge (whose network it is); null when there is no namespace, bridge or alias. */
  private async namespaceOwner(id: string): Promise<string | null> {
    const ns = namedNamespace(id);
    if (!existsSync(ns)) return null;
    return (await readLinks(ns)).find((l) => l.name === BRIDGE)?.alias ?? null;
  }

  /**
   * A WireGuard interface name for network `id` that no other network of the machine
   * uses: not in another state file here, not a link of the underlay, not a live
   * wireguard-go socket (whose names are machine-wide). Recorded in the state file.
   */
  private async allocateInterface(id: string): Promise<string> {
    const others = await Promise.all((await this.state.ids()).filter((other) => other !== id).map((other) => this.state.read(other).catch(() => null)));
    const recorded = new Set(others.flatMap((s) => (s ? [s.interface] : [])));
    const underlay = new Set((await readLinks(this.underlay)).map((l) => l.name));
    for (let attempt = 0; attempt < INTERFACE_ATTEMPTS; attempt++) {
      const name = wireguardInterface(id, attempt);
      if (!recorded.has(name) && !underlay.has(name) && !(await socketAnswers(uapiSocket(name)))) return name;
    }
    throw new Error(`network ${id}: no free WireGuard interface name after ${INTERFACE_ATTEMPTS} candidates`);
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
      const present = (await readLinks(containerNs)).find((l) => l.name === inside);
      if (present && present.alias !== linkAlias(spec.id)) {
        throw clash(spec, `the container of ${container.workload} has an interface ${inside} of ${present.alias ?? 'no recorded network'}`);
      }
      const links = await readLinks(ns);
      if (links.some((l) => l.name === link)) {
        const attached = await readAddresses(containerNs, inside).catch((): string[] => []);
        if (attached.includes(address)) return;
        await ip(ns, 'link', 'del', link); // a leftover of an earlier container with this IP
      }
      const wireguard = await this.state.read(spec.id).then((s) => s && links.find((l) => l.name === s.interface));
      const mtu = String(containerMtu(wireguard?.mtu ?? null));
      await ip(ns, 'link', 'add', link, 'mtu', mtu, 'type', 'veth', 'peer', 'name', inside, 'mtu', mtu, 'netns', String(container.pid));
      await ip(ns, 'link', 'set', link, 'master', BRIDGE, 'up');
      await ip(containerNs, 'link', 'set', inside, 'alias', linkAlias(spec.id));
      await ip(containerNs, 'addr', 'add', address, 'dev', inside);
      await ip(containerNs, 'link', 'set', inside, 'up');
      await ip(containerNs, 'link', 'set', 'lo', 'up');
      for (const route of containerRoutes(n)) await ip(containerNs, 'route', 'replace', route, 'via', gateway, 'dev', inside);
    });
  }

  attachVm(spec: NetworkSpec, vm: { workload: string; ip: string }): Promise<VmLink> {
    return this.serialized(spec.id, async () => {
      this.checkMemberIp(spec, vm.workload, vm.ip);
      const ns = namedNamespace(spec.id);
      if (!existsSync(ns)) throw new Error(`network ${spec.network} (${spec.id}) does not exist on this node yet: ensure it first`);
      const links = vmLinks(spec.id, vm.ip);
      const vmPid = await this.vmNamespacePid();
      const vmNs = `/proc/${vmPid}/ns/net`;
      const host = await readLinks(vmNs);
      const alias = vmBridgeAlias(spec.id, vm.ip);
      // libvirtd's namespace is the machine's: a name of 48 bits there may be another network's.
      for (const name of [links.bridge, links.hostEnd]) {
        const found = host.find((l) => l.name === name);
        if (found && found.alias !== alias) throw clash(spec, `${name} in libvirtd's network namespace belongs to ${found.alias ?? 'something not made by zone'}, not to ${alias} (VM ${vm.workload})`);
      }
      if (!host.some((l) => l.name === links.bridge)) {
        await ip(vmNs, 'link', 'add', links.bridge, 'type', 'bridge');
        await ip(vmNs, 'link', 'set', links.bridge, 'alias', alias);
      }
      if (!host.some((l) => l.name === links.hostEnd)) {
        // A network end left from an earlier pair would block the new one.
        if ((await readLinks(ns)).some((l) => l.name === links.networkEnd)) await ip(ns, 'link', 'del', links.networkEnd);
        await ip(ns, 'link', 'add', links.networkEnd, 'type', 'veth', 'peer', 'name', links.hostEnd, 'netns', String(vmPid));
        await ip(vmNs, 'link', 'set', links.hostEnd, 'alias', alias);
      }
      await ip(ns, 'link', 'set', links.networkEnd, 'master', BRIDGE, 'up');
      await ip(vmNs, 'link', 'set', links.hostEnd, 'master', links.bridge, 'up');
      await ip(vmNs, 'link', 'set', links.bridge, 'up');
      await this.allowBridgedVmFrames(vmNs, true);
      const subnet = spec.definition.subnet;
      return { network: spec.network, bridge: links.bridge, mac: links.mac, address: `${vm.ip}/${prefixLength(subnet)}`, gateway: gatewayOf(subnet) };
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
    return this.queues.run(id, async () => {
      this.changed(id);
      try {
        return await work();
      } finally {
        this.changed(id);
      }
    });
  }

  /** What `list()` last saw of network `id` no longer holds. */
  private changed(id: string): void {
    this.generations.set(id, (this.generations.get(id) ?? 0) + 1);
    this.looks.delete(id);
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

  private async observe(state: NetworkState): Promise<DeviceState> {
    const ns = namedNamespace(state.id);
    if (!existsSync(ns)) {
      return { namespace: false, bridgeAddresses: null, interfaceAlive: false, interfaceUp: false, interfaceMtu: null, device: null, routes: [] };
    }
    const links = await readLinks(ns);
    const wg = links.find((l) => l.name === state.interface);
    const interfaceAlive = !!wg && (state.implementation === 'kernel' || (state.pid !== null && await isWireguardGo(state.pid, state.interface)));
    return {
      namespace: true,
      bridgeAddresses: links.some((l) => l.name === BRIDGE) ? await readAddresses(ns, BRIDGE) : null,
      interfaceAlive,
      interfaceUp: wg?.up ?? false,
      interfaceMtu: wg?.mtu ?? null,
      device: interfaceAlive ? await this.readDevice(state) : null,
      routes: interfaceAlive ? await readRoutes(ns, state.interface) : [],
    };
  }

  /** The WireGuard interface's MTU from the underlay links towards the peers given by address (two `ip` calls, however many peers). */
  private async interfaceMtu(spec: NetworkSpec): Promise<number> {
    const peers = (spec.definition.wireguard?.peers ?? []).map((p) => endpointAddress(p.endpoint ?? null)).filter((a): a is string => a !== null);
    if (peers.length === 0) return wireguardMtu([]);
    const [routes, links] = await Promise.all([readRouteTable(this.underlay), readLinks(this.underlay)]);
    const mtus = peers.map((a) => links.find((l) => l.name === routeDevice(routes, a))?.mtu).filter((m): m is number => m !== undefined);
    return wireguardMtu(mtus);
  }

  private async readDevice(state: NetworkState): Promise<WireguardDevice> {
    return parseWireguardDump(await this.wg(state, ['show', state.interface, 'dump']));
  }

  /** `wg` in the network namespace: a kernel interface is only visible there; wireguard-go's socket from anywhere. */
  private wg(state: NetworkState, args: string[], input?: string): Promise<string> {
    const command = inNamespace(namedNamespace(state.id), ['wg', ...args]);
    return input === undefined ? runCommand(command) : runCommand(throughPipe(command), { input });
  }

  private async execute(step: DeviceStep, spec: NetworkSpec, state: NetworkState): Promise<NetworkState> {
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
        await ip(ns, 'link', 'set', BRIDGE, 'alias', networkAlias(spec));
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
      case 'set-mtu':
        await ip(ns, 'link', 'set', iface, 'mtu', String(step.mtu));
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
  private async createInterface(recorded: NetworkState): Promise<NetworkState> {
    await this.stopInterface(recorded);
    let state = recorded;
    // Our process is gone: a link or a live socket under the recorded name is another network's now.
    const taken = (await readLinks(this.underlay)).some((l) => l.name === state.interface) || await socketAnswers(uapiSocket(state.interface));
    if (taken) state = await this.saved({ ...state, interface: await this.allocateInterface(state.id) });
    const iface = state.interface;
    let pid: number | null = null;
    if (state.implementation === 'kernel') {
      await ip(this.underlay, 'link', 'add', iface, 'type', 'wireguard');
    } else {
      pid = await this.startWireguardGo(state);
    }
    await ip(this.underlay, 'link', 'set', iface, 'alias', linkAlias(state.id));
    await this.saved({ ...state, pid });
    await ip(this.underlay, 'link', 'set', iface, 'netns', state.id);
    return { ...state, pid };
  }

  private async startWireguardGo(state: NetworkState): Promise<number> {
    const iface = state.interface;
    await rm(uapiSocket(iface), { force: true }); // a stale socket: createInterface saw nobody answer on it
    await mkdir(this.state.dir, { recursive: true, mode: 0o700 });
    const logPath = join(this.state.dir, `${state.id}.log`);
    const log = await open(logPath, 'a', 0o600);
    // Before the process makes its UDP socket, which takes the default then. Not fatal: a
    // host whose /proc/sys is read-only (the appliance in a container) runs it slower.
    await raiseReceiveBufferDefault(WIREGUARD_GO_RECEIVE_BUFFER, this.receiveBufferDefault).catch(async (e: unknown) => {
      await log.write(`zone: could not raise ${this.receiveBufferDefault} to ${WIREGUARD_GO_RECEIVE_BUFFER} (${(e as Error).message}): wireguard-go's socket keeps the host's default receive buffer\n`);
    });
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
      if (links.some((l) => l.name === iface) && existsSync(uapiSocket(iface))) return pid;
      const code = await Promise.race([exited, delay(50).then(() => 'running' as const)]);
      if (code !== 'running' || Date.now() > deadline) {
        if (code === 'running') process.kill(pid, 'SIGKILL');
        const tail = (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
        throw new Error(`wireguard-go for ${iface} ${code === 'running' ? 'did not create its interface in time' : `exited (${code})`}: ${tail || 'no log'}`);
      }
    }
  }

  /**
   * Stops the interface's process and deletes the link wherever it is left: in the
   * network's namespace, and in the underlay only when its alias says it is ours (the
   * name may be another network's there).
   */
  private async stopInterface(state: NetworkState): Promise<void> {
    const pid = state.pid;
    if (pid !== null && await isWireguardGo(pid, state.interface)) await stopProcess(pid, () => isWireguardGo(pid, state.interface), 5000, 20);
    const ns = namedNamespace(state.id);
    const leftInUnderlay = (await readLinks(this.underlay)).some((l) => l.name === state.interface && l.alias === linkAlias(state.id));
    for (const where of [...(existsSync(ns) ? [ns] : []), ...(leftInUnderlay ? [this.underlay] : [])]) {
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
    const applied = this.applied.get(state.id);
    const drift = applied && describeDrift(applied, observed, Date.now() / 1000);
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
      ...(drift ? { drift } : {}),
    };
  }
}

const sameNetwork = (a: NetworkIdentity, b: NetworkIdentity) => a.node === b.node && a.owner === b.owner && a.blueprint === b.blueprint && a.network === b.network;

export function describeNetwork(n: NetworkIdentity): string {
  return `network ${n.blueprint}/${n.network} of owner ${n.owner} on node ${n.node}`;
}

/** The error for a name of `spec`'s that something else holds: it names both, and the other thing is left alone. */
function clash(spec: NetworkSpec, holder: string): NetworkSpecError {
  return new NetworkSpecError(spec.network, 'name', `${spec.id} is wanted by ${describeNetwork(spec)}, but ${holder}; it is left alone`);
}

/** Something serves the unix socket (a live wireguard-go); a stale file of a dead one refuses connections. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The PID runs wireguard-go for `iface` (and is not a zombie): PIDs are reused. */
export async function isWireguardGo(pid: number, iface: string): Promise<boolean> {
  const args = await commandLine(pid);
  return args.some((a) => a.endsWith('wireguard-go')) && args.includes(iface) && await processRuns(pid);
}
