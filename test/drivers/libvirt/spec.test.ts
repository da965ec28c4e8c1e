import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import { WorkloadSpecError, type WorkloadSpec } from '../../../drivers/contract.ts';
import { checkVmSpec, imageKindOf, rootVolumeOf, vcpusOf, vmNics, vmRootDisk } from '../../../drivers/libvirt/spec.ts';

function spec(w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: 'vm', kind: 'vm', image: 'zone/busybox', ...w } as Workload);
  return { node: 'n', owner: 'o', blueprint: 'b', workload: 'vm', id: 'zone-b-vm-00000000', specHash: specHash(definition), definition };
}

function refusedField(s: WorkloadSpec): string | null {
  try {
    checkVmSpec(s);
    return null;
  } catch (err) {
    return err instanceof WorkloadSpecError ? err.field : 'not a WorkloadSpecError';
  }
}

t.test('images: an absolute path is a disk image, anything else a container image', async (t) => {
  t.equal(imageKindOf('/var/lib/zone/images/x.qcow2'), 'disk');
  t.equal(imageKindOf('zone/busybox'), 'container');
});

t.test('a disk-image VM boots its root disk volume, by the name rootVolumeOf gives it; without it, a spec error on image', async (t) => {
  const s = spec({ image: '/images/a.qcow2' });
  const name = rootVolumeOf(s.definition);
  t.match(name, /^vm\.root-[0-9a-f]{16}$/);
  t.equal(vmRootDisk({ ...s, volumePaths: { [name!]: '/data/volumes/zv-1/disk.qcow2' } }), '/data/volumes/zv-1/disk.qcow2');
  t.throws(() => vmRootDisk(s), { code: 'WORKLOAD_SPEC', field: 'image', message: /root disk .* has no disk on this node/ });
  t.equal(rootVolumeOf(spec({}).definition), null, 'a container image boots an initrd: no root disk');
});

t.test('a plain VM spec passes; vcpus default to 1', async (t) => {
  t.equal(refusedField(spec({})), null);
  t.equal(vcpusOf(spec({})), 1);
  t.equal(vcpusOf(spec({ vcpus: 2 })), 2);
});

t.test('what a VM cannot honour is refused naming the field', async (t) => {
  t.equal(refusedField(spec({ kind: 'container' })), 'kind');
  t.equal(refusedField(spec({ ports: [{ container: 80, host: 8080 }] })), 'ports');
  t.equal(refusedField(spec({ privileged: true })), 'privileged');
  t.equal(refusedField(spec({ resources: { memory: '16Mi' } })), 'resources.memory');
  t.equal(refusedField(spec({ image: '/x.qcow2', command: ['sh'] })), 'command');
  t.equal(refusedField({ ...spec({}), id: 'Bad_Name' }), 'name');
  const piped = (image: string) => {
    const s = spec({ image });
    return { ...s, definition: { ...s.definition, stdin: 'pipe' as const } };
  };
  t.equal(refusedField(piped('/x.qcow2')), 'pipes', 'a disk image\'s own init does not join pipes');
  t.equal(refusedField(piped('zone/busybox')), null, 'a container image booted as a VM does');
});

t.test('a VM joins each network it names through the bridge the network driver makes for its IP', async (t) => {
  const mesh = { name: 'mesh', subnet: '10.88.1.0/24', ipRange: '10.88.0.0/16' };
  const definition = normalizeWorkload({ name: 'vm', kind: 'vm', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.20' }] } as Workload, [mesh]);
  const s: WorkloadSpec = { node: 'n', owner: 'o', blueprint: 'b', workload: 'vm', id: 'zone-b-vm-00000000', specHash: specHash(definition), definition };
  t.equal(refusedField(s), null, 'networks are allowed');
  const link = { network: 'mesh', bridge: 'zb-0123456789ab', mac: '52:54:00:58:01:14', address: '10.88.1.20/24', gateway: '10.88.1.1' };
  t.same(vmNics({ ...s, vmLinks: [link] }), [link], 'the link the network driver made, handed over in the spec');
  t.throws(() => vmNics(s), /networks\/0\/name: network mesh has no link to this VM/, 'a VM whose link is not made yet is not defined without it');
  t.throws(() => vmNics(spec({ networks: [{ name: 'lan', ip: '10.0.0.2' }] })), /networks\/0\/name: network lan is not declared/, 'an undeclared network is named');
  const container = normalizeWorkload({ name: 'c', kind: 'container', image: 'zone/busybox', networks: [{ name: 'mesh', ip: '10.88.1.21' }] } as Workload, [mesh]);
  t.same(container.networks, [{ name: 'mesh', ip: '10.88.1.21' }], "a container's attachments carry no subnet: its hash does not change with the network's");
});
