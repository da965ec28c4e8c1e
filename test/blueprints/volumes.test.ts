// Volumes in the blueprint format: the checks name the field and say what is accepted,
// and a workload without volumes keeps the spec hash it had before volumes existed.
import t from 'tap';
import { blueprintProblems } from '../../blueprints/parse.ts';
import { normalizeWorkload, specHash } from '../../blueprints/normalize.ts';
import type { Blueprint, Workload } from '../../blueprints/schema.ts';
import { keys } from './fixtures.ts';

const base = (doc: Partial<Blueprint>): Blueprint => ({ name: 'db', version: 1, owner: keys.alice.publicKey, node: 'n1', ...doc });
const container = (over: Partial<Workload> = {}): Workload => ({ name: 'db', kind: 'container', image: 'zone/busybox', ...over } as Workload);
const problems = (doc: Partial<Blueprint>) => blueprintProblems(base(doc)).map((p) => `${p.field}: ${p.message}`);

t.test('volumes, volume mounts and VM disks that fit together have no problems', async (t) => {
  t.same(problems({
    volumes: [{ name: 'data', size: '1Gi' }, { name: 'disk', size: '64Mi', kind: 'block' }],
    workloads: [
      container({ mounts: [{ volume: 'data', target: '/data' }, { volume: 'data', target: '/ro', readOnly: true }] }),
      { name: 'vm', kind: 'vm', image: 'zone/busybox', disks: [{ volume: 'disk' }] },
    ],
  }), []);
});

t.test('each mistake is named by its field', async (t) => {
  const rows: [Partial<Blueprint>, RegExp][] = [
    [{ volumes: [{ name: 'data', size: '1Gi' }], workloads: [container({ mounts: [{ volume: 'nope', target: '/d' }] })] }, /^\/workloads\/0\/mounts\/0\/volume: volume "nope" is not declared in volumes \(declared: data\)/],
    [{ workloads: [container({ mounts: [{ target: '/d' }] })] }, /^\/workloads\/0\/mounts\/0: a mount has either source .* or volume/],
    [{ volumes: [{ name: 'data', size: '1Gi' }], workloads: [container({ mounts: [{ source: '/srv', volume: 'data', target: '/d' }] })] }, /^\/workloads\/0\/mounts\/0: a mount has either source/],
    [{ volumes: [{ name: 'data', size: '1Gi' }], workloads: [container({ mounts: [{ volume: 'data', target: '/d' }, { volume: 'data', target: '/d' }] })] }, /^\/workloads\/0\/mounts\/1\/target: \/d is already the target of another mount/],
    [{ volumes: [{ name: 'data', size: '1Gi' }, { name: 'data', size: '2Gi' }] }, /^\/volumes\/1\/name: volume "data" is declared twice/],
    [{ volumes: [{ name: 'data', size: '1Mi' }] }, /^\/volumes\/0\/size: a volume is at least 16Mi/],
    [{ volumes: [{ name: 'disk', size: '1Gi', kind: 'block' }], workloads: [container({ mounts: [{ volume: 'disk', target: '/d' }] })] }, /block volume: only a VM takes it/],
    [{ volumes: [{ name: 'data', size: '1Gi' }], workloads: [{ name: 'vm', kind: 'vm', image: 'x', disks: [{ volume: 'data' }] }] }, /^\/workloads\/0\/disks\/0\/volume: volume "data" is a filesystem volume/],
    [{ volumes: [{ name: 'data', size: '1Gi' }], workloads: [{ name: 'vm', kind: 'vm', image: 'x', mounts: [{ volume: 'data', target: '/d' }] }] }, /a VM takes volumes as disks/],
    [{ volumes: [{ name: 'disk', size: '1Gi', kind: 'block' }], workloads: [{ name: 'a', kind: 'vm', image: 'x', disks: [{ volume: 'disk' }] }, { name: 'b', kind: 'vm', image: 'x', disks: [{ volume: 'disk' }] }] }, /^\/workloads\/1\/disks\/0\/volume: volume "disk" is already a disk of workload a/],
    [{ delete: true, volumes: [{ name: 'data', size: '1Gi' }] }, /^\/volumes: a tombstone \(delete: true\) has no volumes/],
    [{ volumes: [{ name: 'data', size: 'lots' }] }, /^\/volumes\/0\/size: must be bytes/],
  ];
  for (const [doc, expected] of rows) t.match(problems(doc).join('\n'), expected, expected.source);
});

t.test('a workload without volumes hashes as before volumes existed; volumes enter the hash only when used', async (t) => {
  const plain = container({ command: ['sleep', '1'], mounts: [{ source: '/srv/x', target: '/x' }] });
  // Computed with the tree before volumes (a7a96d4).
  t.equal(specHash(normalizeWorkload(plain)), 'f2061549fac87f1f2ccb6ea76f2ab94a0c1ee8d299b2735a8ab4e18ad2071145');
  t.notOk('volumeMounts' in normalizeWorkload(plain));
  const mounted = normalizeWorkload(container({ mounts: [{ volume: 'data', target: '/data' }] }));
  t.same(mounted.volumeMounts, [{ volume: 'data', target: '/data', readOnly: false }]);
  t.same(mounted.mounts, [], 'a volume mount is not a host mount');
});
