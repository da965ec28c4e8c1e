// Image references: where a pull would come from, and how a reference is tagged.
import t from 'tap';
import { hasRegistryHost, pullReference, splitTag } from '../../../drivers/docker/images.ts';

t.test('a reference that names a registry host is pulled as it is', async (t) => {
  t.ok(hasRegistryHost('registry.local:5000/app'));
  t.ok(hasRegistryHost('localhost/app:1'));
  t.notOk(hasRegistryHost('zone/busybox'));
  t.notOk(hasRegistryHost('busybox:1.36'));
  t.equal(pullReference('registry.local/app', 'other:5000'), 'registry.local/app');
  t.equal(pullReference('zone/busybox', 'registry.local:5000/'), 'registry.local:5000/zone/busybox');
});

t.test('tags split off at the last colon after the last slash', async (t) => {
  t.same(splitTag('registry.local:5000/zone/busybox'), { repo: 'registry.local:5000/zone/busybox', tag: 'latest' });
  t.same(splitTag('registry.local:5000/zone/busybox:1.2'), { repo: 'registry.local:5000/zone/busybox', tag: '1.2' });
  t.same(splitTag('zone/busybox'), { repo: 'zone/busybox', tag: 'latest' });
});
