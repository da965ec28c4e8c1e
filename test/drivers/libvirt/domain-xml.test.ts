import t from 'tap';
import { domainXml, METADATA_NS, parseDomainXml, type DomainPlan } from '../../../drivers/libvirt/domain-xml.ts';

const HASH = 'ab'.repeat(32);

function plan(overrides: Partial<DomainPlan> = {}): DomainPlan {
  return {
    name: 'zone-bp-vm-0123abcd',
    accelerator: 'tcg',
    vcpus: 2,
    memoryBytes: 256 * 1024 * 1024,
    boot: { kind: 'kernel', kernel: '/var/cache/zone/kernel/vmlinuz', initrd: '/data/initrd.cpio.gz', cmdline: 'console=ttyS0 quiet' },
    consoleLog: '/data/console.log',
    consoleSocket: '/data/sock/abc.sock',
    controlSocket: '/data/sock/abc.ctl',
    bridges: [],
    metadata: { node: 'node-1', owner: 'ed25519:AAAA+/==', blueprint: 'bp', workload: 'vm', specHash: HASH },
    ...overrides,
  };
}

t.test('the domain carries our metadata, read back as the identity of the workload', async (t) => {
  const xml = domainXml(plan());
  t.match(xml, `xmlns:zone="${METADATA_NS}"`);
  const facts = parseDomainXml(xml);
  t.same(facts, {
    name: 'zone-bp-vm-0123abcd',
    metadata: { node: 'node-1', owner: 'ed25519:AAAA+/==', blueprint: 'bp', workload: 'vm', specHash: HASH },
    consoleLog: '/data/console.log',
    consoleSocket: '/data/sock/abc.sock',
    shareSource: null,
  });
});

t.test('memory is in KiB, vcpus as given, kernel boot with initrd and cmdline', async (t) => {
  const xml = domainXml(plan({ memoryBytes: 128 * 1024 * 1024 + 1 }));
  t.match(xml, '<memory unit="KiB">131073</memory>');
  t.match(xml, '<vcpu>2</vcpu>');
  t.match(xml, '<kernel>/var/cache/zone/kernel/vmlinuz</kernel>');
  t.match(xml, '<initrd>/data/initrd.cpio.gz</initrd>');
  t.match(xml, '<cmdline>console=ttyS0 quiet</cmdline>');
  t.notMatch(xml, '<interface');
  t.notMatch(xml, '<filesystem');
  t.throws(() => domainXml(plan({ vcpus: 0 })), RangeError);
  t.throws(() => domainXml(plan({ vcpus: 1.5 })), RangeError);
  t.throws(() => domainXml(plan({ memoryBytes: 1000 })), RangeError);
});

t.test('ttyS0 is the logged console socket, ttyS1 the control socket', async (t) => {
  const xml = domainXml(plan());
  t.match(xml, /<serial type="unix">\s*<source mode="bind" path="\/data\/sock\/abc.sock"\/>\s*<log file="\/data\/console.log" append="on"\/>\s*<target port="0"\/>/);
  t.match(xml, /<source mode="bind" path="\/data\/sock\/abc.ctl"\/>\s*<target port="1"\/>/);
});

t.test('the accelerator picks the domain type', async (t) => {
  t.match(domainXml(plan({ accelerator: 'kvm' })), /^<domain type="kvm">/);
  t.match(domainXml(plan({ accelerator: 'tcg' })), /^<domain type="qemu">/);
});

t.test('a disk image boots from a virtio disk in its overlay', async (t) => {
  const xml = domainXml(plan({ boot: { kind: 'disk', path: '/data/disk.qcow2', format: 'qcow2' } }));
  t.match(xml, '<boot dev="hd"/>');
  t.match(xml, '<source file="/data/disk.qcow2"/>');
  t.match(xml, '<driver name="qemu" type="qcow2"/>');
  t.notMatch(xml, '<kernel>');
});

t.test('bridges and the 9p share appear only when asked for', async (t) => {
  const xml = domainXml(plan({ bridges: [{ bridge: 'zbr0', mac: '52:54:00:00:00:01' }], share: { source: '/zone/fs', tag: 'zone', readOnly: true } }));
  t.match(xml, '<source bridge="zbr0"/>');
  t.match(xml, '<mac address="52:54:00:00:00:01"/>');
  t.match(xml, '<target dir="zone"/>');
  t.match(xml, '<readonly/>');
});

t.test('the /zone share squashes the guest\'s ownership changes and reads back as the domain\'s share', async (t) => {
  const xml = domainXml(plan({ share: { source: '/data/zone/vm-1', tag: 'zone', readOnly: false } }));
  t.match(xml, /<filesystem type="mount" accessmode="squash">\s*<source dir="\/data\/zone\/vm-1"\/>\s*<target dir="zone"\/>\s*<\/filesystem>/);
  t.equal(parseDomainXml(xml).shareSource, '/data/zone/vm-1');
  t.equal(parseDomainXml(domainXml(plan())).shareSource, null);
  t.match(domainXml(plan({ uuid: '3f1c0b7e-0000-4000-8000-000000000001' })), '<uuid>3f1c0b7e-0000-4000-8000-000000000001</uuid>', 'a domain defined anew keeps its UUID');
  t.notMatch(domainXml(plan()), '<uuid>');
});

t.test('every value is escaped, and comes back unchanged', async (t) => {
  const hostile = `a<b>&"c'</zone:node><x>`;
  const xml = domainXml(plan({
    metadata: { node: hostile, owner: 'o', blueprint: 'b', workload: 'w', specHash: HASH },
    boot: { kind: 'kernel', kernel: '/k', initrd: '/i', cmdline: `x="</cmdline>"` },
  }));
  t.notMatch(xml, '<x>');
  t.notMatch(xml, '</cmdline>"');
  t.equal(parseDomainXml(xml).metadata?.node, hostile);
});

t.test('domains without our metadata, or with another namespace, are not ours', async (t) => {
  const foreign = '<domain type="kvm"><name>other</name><metadata><app:x xmlns:app="http://example.com/app"/></metadata></domain>';
  t.equal(parseDomainXml(foreign).metadata, null);
  t.equal(parseDomainXml('<domain type="kvm"><name>bare</name></domain>').metadata, null);
  const spoof = domainXml(plan()).replace(METADATA_NS, 'http://example.com/not-zone');
  t.equal(parseDomainXml(spoof).metadata, null);
  const badHash = domainXml(plan()).replace(HASH, 'not-a-hash');
  t.equal(parseDomainXml(badHash).metadata, null);
  t.throws(() => parseDomainXml('<network><name>x</name></network>'), /without <domain><name>/);
});

t.test('block volumes are virtio disks after the boot disk, in order', async (t) => {
  const afterDisk = domainXml(plan({ boot: { kind: 'disk', path: '/data/disk.qcow2', format: 'qcow2' }, volumes: [{ path: '/v/a/disk.qcow2' }, { path: '/v/b/disk.qcow2' }] }));
  t.match(afterDisk, /<source file="\/data\/disk.qcow2"\/>\s*<target dev="vda" bus="virtio"\/>[\s\S]*<source file="\/v\/a\/disk.qcow2"\/>\s*<target dev="vdb" bus="virtio"\/>[\s\S]*<source file="\/v\/b\/disk.qcow2"\/>\s*<target dev="vdc" bus="virtio"\/>/);
  const afterKernel = domainXml(plan({ volumes: [{ path: '/v/a/disk.qcow2' }] }));
  t.match(afterKernel, /<source file="\/v\/a\/disk.qcow2"\/>\s*<target dev="vda" bus="virtio"\/>/);
  t.notMatch(domainXml(plan()), '<disk', 'none when none is asked for');
});

t.test('a piped stdin and stdout are virtio-serial ports named for the guest, each on its own socket; none without pipes', async (t) => {
  const both = domainXml(plan({ stdio: { stdin: '/data/sock/abc.stdin', stdout: '/data/sock/abc.stdout' } }));
  t.match(both, /<channel type="unix">\s*<source mode="bind" path="\/data\/sock\/abc.stdin"\/>\s*<target type="virtio" name="zone.stdin"\/>\s*<\/channel>\s*<channel type="unix">\s*<source mode="bind" path="\/data\/sock\/abc.stdout"\/>\s*<target type="virtio" name="zone.stdout"\/>/);
  const stdoutOnly = domainXml(plan({ stdio: { stdout: '/data/sock/abc.stdout' } }));
  t.notMatch(stdoutOnly, 'zone.stdin');
  t.match(stdoutOnly, 'name="zone.stdout"');
  t.notMatch(domainXml(plan()), '<channel');
});
