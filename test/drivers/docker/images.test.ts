// Image references: where a pull would come from, and how a reference is tagged.
import t from 'tap';
import { splitTag } from '../../../drivers/docker/images.ts';
import { pulledFromRegistry, registryCandidates, registryHostOf } from '../../../drivers/docker/registries.ts';
import type { RegistryAccess } from '../../../drivers/contract.ts';

const registry = (host: string, namespace = ''): RegistryAccess => ({ host, namespace, credentials: () => null });
const REGISTRIES = [registry('registry.local:5000'), registry('mirror.example', 'team/apps')];

t.test('a reference that names a registry host is pulled from that registry only, as it is', async (t) => {
  t.equal(registryHostOf('registry.local:5000/app'), 'registry.local:5000');
  t.equal(registryHostOf('localhost/app'), 'localhost');
  t.equal(registryHostOf('zone/busybox'), null);
  t.equal(registryHostOf('busybox'), null);
  t.same(registryCandidates('registry.local:5000/app:1', REGISTRIES).map((c) => [c.registry.host, c.reference]), [['registry.local:5000', 'registry.local:5000/app:1']]);
  t.same(registryCandidates('elsewhere.example/app', REGISTRIES), [], 'a registry the config does not list is never asked');
});

t.test('a plain name is looked for in every registry in order, below its namespace, with :latest by default', async (t) => {
  t.same(registryCandidates('zone/busybox', REGISTRIES).map((c) => c.reference), ['registry.local:5000/zone/busybox:latest', 'mirror.example/team/apps/zone/busybox:latest']);
  t.same(registryCandidates('app:2', REGISTRIES).map((c) => c.reference), ['registry.local:5000/app:2', 'mirror.example/team/apps/app:2']);
  t.same(registryCandidates('app', []), []);
});

t.test('an image came from a registry when dockerd has a repo digest of it there', async (t) => {
  t.ok(pulledFromRegistry(['registry.local:5000/app@sha256:' + 'a'.repeat(64)], REGISTRIES));
  t.notOk(pulledFromRegistry(['registry.local:50000/app@sha256:' + 'a'.repeat(64)], REGISTRIES), 'another port is another registry');
  t.notOk(pulledFromRegistry([], REGISTRIES), 'loaded from an archive: no repo digest');
  t.notOk(pulledFromRegistry(undefined, REGISTRIES));
});

t.test('tags split off at the last colon after the last slash', async (t) => {
  t.same(splitTag('registry.local:5000/zone/busybox'), { repo: 'registry.local:5000/zone/busybox', tag: 'latest' });
  t.same(splitTag('registry.local:5000/zone/busybox:1.2'), { repo: 'registry.local:5000/zone/busybox', tag: '1.2' });
  t.same(splitTag('zone/busybox'), { repo: 'zone/busybox', tag: 'latest' });
});
