// The domain of a node VM: kernel boot of the image, its disk and read-only config disk,
// a virtio NIC with a MAC fixed by its address, the console in a file, ACPI for reboots.
import t from 'tap';
import { XMLParser } from 'fast-xml-parser';
import { nodeDomainXml, nodeMac } from '../../../cli/cluster/vm-domain.ts';

const domain = {
  name: 'zcl-local-n1', accelerator: 'tcg' as const, vcpus: 2, memoryMiB: 1536,
  kernel: '/cache/zone-node.vmlinuz', initrd: '/cache/zone-node.initrd', cmdline: 'root=/dev/vda console=ttyS0',
  disk: '/c/n1/disk.qcow2', configDisk: '/c/n1/config.img', bridge: 'zcl-local', mac: '52:54:0a:d5:00:0b', consoleLog: '/c/n1/console.log',
};
const parsed = (xml: string) => new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(xml).domain;

t.test('the node boots the image\'s kernel and initrd from its own disk, the config disk read-only beside it', async (t) => {
  const d = parsed(nodeDomainXml(domain));
  t.equal(d['@type'], 'qemu');
  t.same([d.os.kernel, d.os.initrd, d.os.cmdline], [domain.kernel, domain.initrd, domain.cmdline]);
  t.same(d.devices.disk.map((x: { source: { '@file': string }; target: { '@dev': string } }) => [x.source['@file'], x.target['@dev'], 'readonly' in x]),
    [['/c/n1/disk.qcow2', 'vda', false], ['/c/n1/config.img', 'vdb', true]]);
  t.equal(d.devices.interface.source['@bridge'], 'zcl-local');
  t.equal(d.devices.interface.mac['@address'], domain.mac);
  t.equal(d.devices.serial.source['@path'], '/c/n1/console.log');
  t.ok('acpi' in d.features, 'ACPI: virsh reboot presses the power button');
  t.equal(d.on_reboot, 'restart');
  t.equal(parsed(nodeDomainXml({ ...domain, accelerator: 'kvm' }))['@type'], 'kvm');
});

t.test('values are escaped, never markup', async (t) => {
  const xml = nodeDomainXml({ ...domain, consoleLog: '/c/<n1>&/console.log' });
  t.equal(parsed(xml).devices.serial.source['@path'], '/c/<n1>&/console.log');
  t.notMatch(xml, '<n1>');
});

t.test('a node\'s MAC follows its address (a reboot keeps it), inside QEMU\'s range', async (t) => {
  t.equal(nodeMac('10.213.0.11'), '52:54:0a:d5:00:0b');
  t.throws(() => nodeMac('10.213.0'), RangeError);
  t.throws(() => nodeDomainXml({ ...domain, memoryMiB: 64 }), /256 MiB/);
});
