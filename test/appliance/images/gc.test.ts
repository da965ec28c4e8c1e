// Which images the collector removes: a table, the time passed in.
import t from 'tap';
import { collectableImages, collectableLocalImages, type ImageUse, type StoredImage } from '../../../appliance/images/gc.ts';

const GRACE = 1000;
const image = (object: string, pushedAtMs: number): StoredImage => ({ object, pushedAtMs });
const use = (object: string, node: string, atMs: number): ImageUse => ({ object, node, atMs });

const cases: { name: string; images: StoredImage[]; uses: ImageUse[]; now: number; gone: string[] }[] = [
  { name: 'a fresh push stays for the grace period', images: [image('a', 500)], uses: [], now: 1499, gone: [] },
  { name: 'an image nobody pinned goes once the grace period after its push is over', images: [image('a', 500)], uses: [], now: 1500, gone: ['a'] },
  { name: 'an image a node pinned within the grace period stays', images: [image('a', 0)], uses: [use('a', 'n1', 4000)], now: 4500, gone: [] },
  { name: 'the latest use of any node counts', images: [image('a', 0)], uses: [use('a', 'n1', 100), use('a', 'n2', 4000)], now: 4500, gone: [] },
  { name: 'an image no node pinned for the grace period goes', images: [image('a', 0)], uses: [use('a', 'n1', 3000)], now: 4000, gone: ['a'] },
  { name: 'uses of another image do not keep one', images: [image('a', 0), image('b', 0)], uses: [use('b', 'n1', 4000)], now: 4500, gone: ['a'] },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.same(collectableImages(c.images, c.uses, c.now, GRACE), c.gone);
  });
}

const loaded = (digest: string, usedAtMs: number) => ({ digest, usedAtMs });
const localCases: { name: string; loaded: { digest: string; usedAtMs: number }[]; pinned: string[]; now: number; gone: string[] }[] = [
  { name: 'a loaded image stays for the grace period after its last use', loaded: [loaded('a', 500)], pinned: [], now: 1499, gone: [] },
  { name: 'a loaded image no blueprint pinned for the grace period goes', loaded: [loaded('a', 500)], pinned: [], now: 1500, gone: ['a'] },
  { name: 'a pinned image stays however old its last recorded use', loaded: [loaded('a', 0)], pinned: ['a'], now: 10_000, gone: [] },
  { name: 'pins of another image do not keep one', loaded: [loaded('a', 0), loaded('b', 0)], pinned: ['b'], now: 10_000, gone: ['a'] },
];
for (const c of localCases) {
  t.test(`on the node: ${c.name}`, async (t) => {
    t.same(collectableLocalImages(c.loaded, new Set(c.pinned), c.now, GRACE), c.gone);
  });
}
