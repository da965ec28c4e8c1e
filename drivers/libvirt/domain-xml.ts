// Pure translation between a planned VM and libvirt's domain XML: the XML we define, and
// our identity read back from a domain's <metadata> (so list() finds ours and only ours).
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import type { WorkloadIdentity } from '../contract.ts';
import { virtioDiskName } from './spec.ts';

/** Our namespace inside <metadata>; a domain without it (or with another URI) is not ours. */
export const METADATA_NS = 'https://zone.dev/xmlns/libvirt/1';
const PREFIX = 'zone';

export type Accelerator = 'kvm' | 'tcg';

export interface DomainMetadata extends WorkloadIdentity {
  specHash: string;
}

/** How the guest boots: a kernel with an initramfs (container image), or a disk (disk image). */
export type DomainBoot =
  | { kind: 'kernel'; kernel: string; initrd: string; cmdline: string }
  | { kind: 'disk'; path: string; format: 'qcow2' };

export interface DomainPlan {
  /** The domain name: the workload's engine-side id. */
  name: string;
  /** The existing domain's, when it is defined anew (libvirt refuses a known name with another UUID). */
  uuid?: string;
  accelerator: Accelerator;
  vcpus: number;
  memoryBytes: number;
  boot: DomainBoot;
  /** The serial console: everything the guest prints is appended here (virtlogd). */
  consoleLog: string;
  /** The serial console's unix socket (qemu listens): attach() connects to it for stdin and stdout. */
  consoleSocket: string;
  /** ttyS1, a unix socket qemu listens on: a line written there asks the guest init to stop its command. */
  controlSocket: string;
  /** Host bridges to plug a virtio NIC into (none by default; the overlay's slot). */
  bridges: { bridge: string; mac?: string }[];
  /**
   * Block volumes (qcow2 files the engine made), virtio disks in this order after the
   * boot disk: vdb, vdc, ... when it boots a disk, vda, vdb, ... when it boots a kernel.
   */
  volumes?: { path: string }[];
  /**
   * virtio-serial ports for a piped stdin and stdout, each a unix socket qemu listens on
   * (the guest finds them by name: zone.stdin, zone.stdout); absent for a stream not piped.
   */
  stdio?: { stdin?: string; stdout?: string };
  /** A host directory the guest mounts over virtio-9p by `tag` (the pseudokernel's /zone); absent by default. */
  share?: { source: string; tag: string; readOnly: boolean };
  metadata: DomainMetadata;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  format: true,
  suppressEmptyNode: true,
  processEntities: true,
});

function virtioDisk(path: string, format: 'qcow2', dev: string): Record<string, unknown> {
  return {
    '@type': 'file',
    '@device': 'disk',
    driver: { '@name': 'qemu', '@type': format },
    source: { '@file': path },
    target: { '@dev': dev, '@bus': 'virtio' },
  };
}

function kib(bytes: number): number {
  return Math.ceil(bytes / 1024);
}

/** The domain XML for `plan`, every value escaped by the builder. */
export function domainXml(plan: DomainPlan): string {
  if (!Number.isInteger(plan.vcpus) || plan.vcpus < 1) throw new RangeError(`vcpus must be a positive integer, got ${plan.vcpus}`);
  if (!(plan.memoryBytes >= 1024 * 1024)) throw new RangeError(`memory must be at least 1 MiB, got ${plan.memoryBytes} bytes`);
  const m = plan.metadata;
  const os: Record<string, unknown> = { type: { '@arch': 'x86_64', '@machine': 'pc', '#text': 'hvm' } };
  const devices: Record<string, unknown> = {};
  const disks: Record<string, unknown>[] = [];
  if (plan.boot.kind === 'kernel') {
    os.kernel = plan.boot.kernel;
    os.initrd = plan.boot.initrd;
    os.cmdline = plan.boot.cmdline;
  } else {
    os.boot = { '@dev': 'hd' };
    disks.push(virtioDisk(plan.boot.path, plan.boot.format, virtioDiskName(0)));
  }
  const volumes = plan.volumes ?? [];
  if (disks.length + volumes.length > 26) throw new RangeError(`at most 26 virtio disks, got ${disks.length + volumes.length}`);
  for (const v of volumes) disks.push(virtioDisk(v.path, 'qcow2', virtioDiskName(disks.length)));
  if (disks.length > 0) devices.disk = disks;
  if (plan.share) {
    devices.filesystem = {
      '@type': 'mount',
      // squash: qemu acts as its own user and ignores the guest's chown, so the guest cannot
      // change host ownership; `mapped` would keep ownership in xattrs, which /zone has not.
      '@accessmode': 'squash',
      source: { '@dir': plan.share.source },
      target: { '@dir': plan.share.tag },
      ...(plan.share.readOnly ? { readonly: '' } : {}),
    };
  }
  if (plan.bridges.length > 0) {
    devices.interface = plan.bridges.map((b) => ({
      '@type': 'bridge',
      source: { '@bridge': b.bridge },
      ...(b.mac ? { mac: { '@address': b.mac } } : {}),
      // e1000: one kernel module (no virtio stack) for the container-image guest to load.
      model: { '@type': 'e1000' },
    }));
  }
  // ttyS0 is a unix socket qemu listens on, logged to a file: logs() reads the file,
  // attach() connects to the socket; output is never lost when nobody is attached.
  devices.serial = [
    {
      '@type': 'unix',
      source: { '@mode': 'bind', '@path': plan.consoleSocket },
      log: { '@file': plan.consoleLog, '@append': 'on' },
      target: { '@port': '0' },
    },
    { '@type': 'unix', source: { '@mode': 'bind', '@path': plan.controlSocket }, target: { '@port': '1' } },
  ];
  const channels = (['stdin', 'stdout'] as const).flatMap((stream) => {
    const path = plan.stdio?.[stream];
    return path ? [{ '@type': 'unix', source: { '@mode': 'bind', '@path': path }, target: { '@type': 'virtio', '@name': `zone.${stream}` } }] : [];
  });
  if (channels.length > 0) devices.channel = channels;
  devices.memballoon = { '@model': 'none' };
  const doc = {
    domain: {
      '@type': plan.accelerator === 'kvm' ? 'kvm' : 'qemu',
      name: plan.name,
      ...(plan.uuid ? { uuid: plan.uuid } : {}),
      metadata: {
        [`${PREFIX}:workload`]: {
          [`@xmlns:${PREFIX}`]: METADATA_NS,
          [`${PREFIX}:node`]: m.node,
          [`${PREFIX}:owner`]: m.owner,
          [`${PREFIX}:blueprint`]: m.blueprint,
          [`${PREFIX}:workload`]: m.workload,
          [`${PREFIX}:spec-hash`]: m.specHash,
        },
      },
      memory: { '@unit': 'KiB', '#text': kib(plan.memoryBytes) },
      vcpu: plan.vcpus,
      os,
      features: { acpi: '' },
      // A guest that powers off or crashes stays defined and shut off: the engine decides.
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      devices,
    },
  };
  return builder.build(doc) as string;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => name === 'serial' || name === 'filesystem',
});

/** What we read back from a domain's XML (as libvirt returns it). */
export interface DomainFacts {
  name: string;
  /** null when the domain is not ours (no metadata, another namespace, or incomplete). */
  metadata: DomainMetadata | null;
  /** The serial console log file, when the domain has one. */
  consoleLog: string | null;
  consoleSocket: string | null;
  /** The host directory of the domain's 9p share, when it has one. */
  shareSource: string | null;
}

function text(value: unknown): string | null {
  if (typeof value === 'string') return value;
  const inner = record(value)?.['#text'];
  return typeof inner === 'string' ? inner : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

const NON_EMPTY = /^\S[\s\S]{0,1023}$/;
const HASH = /^[0-9a-f]{16,128}$/;

/** Reads name, our metadata and the console paths from domain XML; throws on XML that is not a domain. */
export function parseDomainXml(xml: string): DomainFacts {
  const root = record(parser.parse(xml))?.domain;
  const domain = record(root);
  const name = text(domain?.name);
  if (!domain || !name) throw new Error('libvirt returned XML without <domain><name>');
  const meta = record(record(domain.metadata)?.[`${PREFIX}:workload`]);
  let metadata: DomainMetadata | null = null;
  if (meta && meta[`@xmlns:${PREFIX}`] === METADATA_NS) {
    const fields = {
      node: text(meta[`${PREFIX}:node`]),
      owner: text(meta[`${PREFIX}:owner`]),
      blueprint: text(meta[`${PREFIX}:blueprint`]),
      workload: text(meta[`${PREFIX}:workload`]),
      specHash: text(meta[`${PREFIX}:spec-hash`]),
    };
    const { node, owner, blueprint, workload, specHash } = fields;
    if (node && owner && blueprint && workload && specHash
      && [node, owner, blueprint, workload].every((v) => NON_EMPTY.test(v)) && HASH.test(specHash)) {
      metadata = { node, owner, blueprint, workload, specHash };
    }
  }
  const serials = record(domain.devices)?.serial;
  const serial = Array.isArray(serials) ? record(serials.find((x) => record(record(x)?.target)?.['@port'] === '0') ?? serials[0]) : null;
  const log = record(serial?.log)?.['@file'];
  const socket = record(serial?.source)?.['@path'];
  const filesystems = record(domain.devices)?.filesystem;
  const share = Array.isArray(filesystems) ? record(record(filesystems[0])?.source)?.['@dir'] : null;
  return {
    name,
    metadata,
    consoleLog: typeof log === 'string' ? log : null,
    consoleSocket: typeof socket === 'string' ? socket : null,
    shareSource: typeof share === 'string' ? share : null,
  };
}
