// Pure: the libvirt domain of one node VM of `zone cluster up --vm`. The node image boots
// through libvirt's <kernel>/<initrd> (cli/node-image/build.ts says why), its disk an
// overlay of the image's, its config disk (cli/node-image/config-disk.ts) the second
// virtio disk, read-only; one virtio NIC on the cluster's bridge; the serial console
// appended to a file on the host. ACPI is on: `virsh reboot` and `virsh shutdown` press
// the power button, which the guest answers with a clean poweroff (libvirt then starts
// it again for a reboot).
import { XMLBuilder } from 'fast-xml-parser';
import type { Accelerator } from '../../drivers/libvirt/domain-xml.ts';

export interface NodeDomain {
  name: string;
  accelerator: Accelerator;
  vcpus: number;
  memoryMiB: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  /** The node's own disk (qcow2, backed by the image's). */
  disk: string;
  configDisk: string;
  bridge: string;
  mac: string;
  consoleLog: string;
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '#text', format: true, suppressEmptyNode: true });

/** A MAC address of QEMU's range, fixed per cluster subnet and node index: a reboot keeps it. */
export function nodeMac(address: string): string {
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new RangeError(`not an IPv4 address: ${address}`);
  return ['52', '54', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

export function nodeDomainXml(d: NodeDomain): string {
  if (!Number.isInteger(d.vcpus) || d.vcpus < 1 || d.vcpus > 64) throw new RangeError(`vcpus must be 1 to 64, got ${d.vcpus}`);
  if (!Number.isInteger(d.memoryMiB) || d.memoryMiB < 256) throw new RangeError(`a node VM needs at least 256 MiB, got ${d.memoryMiB}`);
  const disk = (file: string, format: string, dev: string, readOnly: boolean) => ({
    '@type': 'file', '@device': 'disk',
    driver: { '@name': 'qemu', '@type': format },
    source: { '@file': file },
    target: { '@dev': dev, '@bus': 'virtio' },
    ...(readOnly ? { readonly: '' } : {}),
  });
  return builder.build({
    domain: {
      '@type': d.accelerator === 'kvm' ? 'kvm' : 'qemu',
      name: d.name,
      memory: { '@unit': 'MiB', '#text': String(d.memoryMiB) },
      vcpu: d.vcpus,
      os: { type: { '@arch': 'x86_64', '@machine': 'pc', '#text': 'hvm' }, kernel: d.kernel, initrd: d.initrd, cmdline: d.cmdline },
      features: { acpi: '' },
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      devices: {
        disk: [disk(d.disk, 'qcow2', 'vda', false), disk(d.configDisk, 'raw', 'vdb', true)],
        interface: { '@type': 'bridge', source: { '@bridge': d.bridge }, mac: { '@address': d.mac }, model: { '@type': 'virtio' } },
        serial: { '@type': 'file', source: { '@path': d.consoleLog, '@append': 'on' }, target: { '@port': '0' } },
        controller: { '@type': 'usb', '@model': 'none' },
        memballoon: { '@model': 'none' },
      },
    },
  }) as string;
}
