// Image references: a pinned one is name@sha256:64 lower-case hex, checked by the schema
// in linear time; anything else with an @ is refused, and an unpinned one is warned of.
import t from 'tap';
import { IMAGE_PATTERN, pinnedImage, unpinnedImageWarnings } from '../../blueprints/image-ref.ts';
import { blueprintProblems } from '../../blueprints/parse.ts';

const HEX = 'a1'.repeat(32);
const OWNER = `ed25519:${Buffer.alloc(32, 1).toString('base64')}`;
const withImage = (image: string) => ({ name: 'x', version: 1, owner: OWNER, node: 'n1', workloads: [{ name: 'w', kind: 'container', image }] });

t.test('pinned references are parsed into name and digest; others are not pinned', async (t) => {
  t.same(pinnedImage(`zone/app:1@sha256:${HEX}`), { name: 'zone/app:1', digest: `sha256:${HEX}` });
  t.equal(pinnedImage('zone/busybox'), null);
  t.equal(pinnedImage(`zone/app@sha256:${HEX.toUpperCase()}`), null);
});

t.test('the schema takes a name or name@sha256:DIGEST and refuses any other @, naming the field', async (t) => {
  for (const ok of ['zone/busybox', `zone/app@sha256:${HEX}`, '/var/lib/zone/disk.qcow2']) t.same(blueprintProblems(withImage(ok)), [], ok);
  for (const bad of [`zone/app@sha256:${HEX.slice(1)}`, `zone/app@sha512:${HEX}`, `zone/app@sha256:${HEX.toUpperCase()}`, `@sha256:${HEX}`, 'a@b', `zone/app@sha256:${HEX}@sha256:${HEX}`]) {
    t.match(blueprintProblems(withImage(bad)), [{ field: '/workloads/0/image' }], bad);
  }
});

t.test('a hostile reference of the largest length is checked in linear time', async (t) => {
  const started = performance.now();
  for (let i = 0; i < 1000; i++) new RegExp(IMAGE_PATTERN).test(`${'a'.repeat(1000)}@sha256:${'0'.repeat(63)}!`);
  t.ok(performance.now() - started < 500, 'a thousand near-misses take well under a second');
});

t.test('every unpinned image is warned of, with its field', async (t) => {
  t.match(unpinnedImageWarnings([{ name: 'a', image: 'zone/busybox' }, { name: 'b', image: `zone/app@sha256:${HEX}` }]), [
    { field: '/workloads/0/image', message: /warning: workload a: image zone\/busybox is not pinned/ },
  ]);
  t.equal(unpinnedImageWarnings([{ name: 'b', image: `zone/app@sha256:${HEX}` }]).length, 0);
});
