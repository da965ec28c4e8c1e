import { mkdtempSync, rmSync, writeFileSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { ZoneError } from '../../lib/errors.ts';
import { readSigningKey } from '../../blueprints/keys.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'zone-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function errorOf(fn: () => unknown): ZoneError | undefined {
  try {
    fn();
  } catch (err) {
    return err as ZoneError;
  }
  return undefined;
}

t.test('defaults: data dir under the working dir, listen 127.0.0.1:7700, nothing risky allowed', async (t) => {
  const cwd = tmp(t);
  const c = loadNodeConfig({ env: {}, cwd });
  t.equal(c.dataDir, join(cwd, '.zone/node'));
  t.same(c.listen, [{ host: '127.0.0.1', port: 7700 }]);
  t.equal(c.readTokens, null, 'reads are open');
  t.equal(c.trustPolicyPath, join(cwd, '.zone/node/trust-policy.json'));
  t.same(c.policy, { privileged: false, hostNetwork: false, hostMounts: [], devices: [], capabilities: [], vmImages: [], terminals: true });
});

t.test('the environment and the config file override the defaults', async (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ listen: '0.0.0.0:8800', policy: { hostMounts: ['/srv'] }, overcommit: { memory: 1.5 } }));
  const c = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' });
  t.same(c.listen, [{ host: '0.0.0.0', port: 8800 }]);
  t.same(c.policy.hostMounts, ['/srv']);
  t.equal(c.overcommit.memory, 1.5);
  t.same(loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_LISTEN: '127.0.0.1:9' }, cwd: '/' }).listen, [{ host: '127.0.0.1', port: 9 }]);
});

t.test('the API may listen on several addresses and require read tokens', async (t) => {
  const dir = tmp(t);
  const reader = 'ed25519:' + 'A'.repeat(43) + '=';
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ listen: ['127.0.0.1:7700', '10.88.1.1:7700'], readTokens: { keys: [reader], maxTtlSeconds: 60 } }));
  const c = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' });
  t.same(c.listen, [{ host: '127.0.0.1', port: 7700 }, { host: '10.88.1.1', port: 7700 }]);
  t.same(c.readTokens, { public: false, keys: [reader], maxTtlSeconds: 60 });
  t.same(loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_LISTEN: '127.0.0.1:1,127.0.0.2:2' }, cwd: '/' }).listen, [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.2', port: 2 }]);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ readTokens: { keys: ['ed25519:short'] } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/readTokens/keys/0' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ readTokens: { public: true } }));
  t.same(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).readTokens, { public: true, keys: null }, 'reads opened explicitly');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ readTokens: { public: true, keys: [reader] } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/readTokens/public', message: /public reads take no keys/ });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ listen: [] }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/listen' });
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: tmp(t), ZONE_LISTEN: '127.0.0.1:1,' }, cwd: '/' })), { code: 'INVALID', field: '/listen' });
});

t.test('the nats-server takes clients on 127.0.0.1:4222 unless the config says otherwise, and may be clustered', async (t) => {
  t.same(loadNodeConfig({ env: {}, cwd: tmp(t) }).nats, { host: '127.0.0.1', port: 4222, cluster: null });
  const dir = tmp(t);
  const tls = { ca: '/grid/ca.crt', cert: 'route.crt', key: 'route.key' };
  const cluster = { name: 'grid', listen: '10.9.0.1:6222', routes: ['10.9.0.2:6222'], routeSecret: 'route-secret' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { listen: '127.0.0.1:14222', cluster: { ...cluster, tls } } }));
  t.same(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).nats, {
    host: '127.0.0.1', port: 14222, cluster: {
      name: 'grid', host: '10.9.0.1', port: 6222, routes: ['10.9.0.2:6222'], routeSecretFile: join(dir, 'route-secret'),
      tls: { caFile: '/grid/ca.crt', certFile: join(dir, 'route.crt'), keyFile: join(dir, 'route.key') },
    },
  }, 'the route files, relative to the data directory');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { cluster } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/nats/cluster/tls', message: /routes need mutual TLS/ }, 'routes without TLS only when asked for');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { cluster: { ...cluster, plainRoutes: true } } }));
  t.equal(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).nats.cluster?.tls, null, 'plainRoutes (benchmarks)');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { cluster: { ...cluster, plainRoutes: true, tls } } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { field: '/nats/cluster/plainRoutes' });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { cluster: { ...cluster, routeSecret: undefined, tls } } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { field: '/nats/cluster/routeSecret' }, 'a cluster needs the route password');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { listen: '127.0.0.1:99999' } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { field: '/nats/listen' });
  // $ZONE_NATS_LISTEN sets the client address only: a bad cluster address is the file's.
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ nats: { cluster: { ...cluster, listen: '10.9.0.1:70000', tls } } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: '127.0.0.1:14333' }, cwd: '/' })),
    { field: '/nats/cluster/listen', message: new RegExp(`^${join(dir, 'config.json')}: nats.cluster.listen: "10.9.0.1:70000" is not host:port`) });
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: '127.0.0.1:99999' }, cwd: '/' })), { field: '/nats/listen', message: /^\$ZONE_NATS_LISTEN: / });
});

t.test('a bad config file is refused naming the field', async (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ overcommit: { memory: 'lots' } }));
  const err = errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }));
  t.type(err, ZoneError);
  t.equal(err?.field, '/overcommit/memory');
  t.match(err?.message, /config\.json: \/overcommit\/memory/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ typo: true }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID' });
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: tmp(t), ZONE_LISTEN: 'nowhere' }, cwd: '/' })), { code: 'INVALID', field: '/listen' });
});

t.test('workloads reach none of the node\'s services unless firewall.open names them; never the NATS routes', async (t) => {
  const dir = tmp(t);
  t.strictSame(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).firewall, { open: [] });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ firewall: { open: ['api', 'nats'] } }));
  t.strictSame(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).firewall, { open: ['api', 'nats'] });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ firewall: { open: ['nats-routes'] } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/firewall/open/0' });
});

t.test('the first start makes an operator key and a policy trusting it; later starts keep them', async (t) => {
  const dir = tmp(t);
  const c = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' });
  const first = loadOrCreateTrustPolicy(c);
  t.equal(first.createdOperatorKey, join(dir, 'operator.key'));
  t.equal(statSync(first.createdOperatorKey!).mode & 0o777, 0o600);
  t.same(first.policy, { signers: [{ key: readSigningKey(first.createdOperatorKey!).publicKey, weight: 1, label: 'operator' }], threshold: 1 });
  const policyText = readFileSync(c.trustPolicyPath, 'utf8');
  const second = loadOrCreateTrustPolicy(c);
  t.equal(second.createdOperatorKey, null);
  t.same(second.policy, first.policy);
  t.equal(readFileSync(c.trustPolicyPath, 'utf8'), policyText);
});

t.test('limits: documented defaults, overridden field by field; owners whose buckets cannot all be reserved are refused', async (t) => {
  const dir = tmp(t);
  const defaults = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).limits;
  t.same(defaults, {
    eventStreams: { perClient: 8, total: 256 }, logFollows: { perClient: 4, total: 64 },
    jetstreamFileBytes: 8 * 2 ** 30, jetstreamMemoryBytes: 256 * 2 ** 20, ownerBytes: 256 * 2 ** 20, ownerKvBytes: 16 * 2 ** 20,
    gridFileBytes: 64 * 2 ** 20, owners: 24, zoneOpenFiles: 1024, imageStoreBytes: 768 * 2 ** 20, ownerImageBytes: 512 * 2 ** 20,
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { eventStreams: { perClient: 2 }, owners: 4, zoneOpenFiles: 64 } }));
  const set = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).limits;
  t.same([set.eventStreams, set.owners, set.zoneOpenFiles, set.logFollows], [{ perClient: 2, total: 256 }, 4, 64, defaults.logFollows]);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { owners: 100 } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/limits/owners', message: /limits\.owners x .* \+ limits\.imageStoreBytes is .* more than limits\.jetstreamFileBytes/ });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { logFollows: { total: 0 } } }));
  t.match(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' })), { code: 'INVALID', field: '/limits/logFollows/total' });
});

t.test('volumes.retention: 24h by default, a duration from the file, anything else refused naming the field', async (t) => {
  t.equal(loadNodeConfig({ env: {}, cwd: tmp(t) }).volumes.retentionMs, 24 * 3_600_000);
  const dir = tmp(t);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ volumes: { retention: '90m' } }));
  t.equal(loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }).volumes.retentionMs, 90 * 60_000);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ volumes: { retention: 'a day' } }));
  t.equal(errorOf(() => loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' }))?.field, '/volumes/retention');
});

t.test('registries: none by default; read in order from the file; a bad entry refused naming the field, a clear password without echoing it', async (t) => {
  t.same(loadNodeConfig({ env: {}, cwd: tmp(t) }).registries, []);
  const dir = tmp(t);
  const load = (registries: unknown) => {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ registries }));
    return loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: '/' });
  };
  t.same(load([{ url: 'b.example' }, { url: 'a.example:5000/team' }]).registries.map((r) => r.url), ['b.example', 'a.example:5000/team']);
  t.match(errorOf(() => load([{ url: 'a.example', token: 'x' }])), { code: 'INVALID', field: '/registries/0' });
  t.match(errorOf(() => load({ url: 'a.example' })), { code: 'INVALID', field: '/registries' });
  const clear = errorOf(() => load([{ url: 'a.example', username: 'ci', password: 'in-clear-123' }]));
  t.match(clear, { code: 'INVALID', field: '/registries/0/password', message: /is not a sealed value/ });
  t.notMatch(clear?.message, 'in-clear-123');
});
