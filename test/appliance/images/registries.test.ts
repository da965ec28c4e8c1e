// The node config's registries: every field checked with an error that names it (and
// never holds a password), and credentials that open only on this node, for the node's
// own key and the registry's host.
import t from 'tap';
import { parseRegistries, registryAccess } from '../../../appliance/images/registries.ts';
import { generateBoxKeyPair, openSealed, sealSecret } from '../../../blueprints/seal.ts';
import { registryPasswordField } from '../../../blueprints/sealed-fields.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import { ZoneError } from '../../../lib/errors.ts';

const box = generateBoxKeyPair();
const signing = generateSigningKeyPair();
const NODE = 'node1';
const PASSWORD = 'hunter2-registry';
const sealFor = (host: string, overrides: { owner?: string; field?: string } = {}) => sealSecret(PASSWORD, box.publicKey, {
  owner: overrides.owner ?? signing.publicKey, node: NODE, blueprint: '*', field: overrides.field ?? registryPasswordField(host),
});
const node = { signingKey: signing.publicKey, open: (sealed: string, place: { owner: string; blueprint: string; field: string }) => openSealed(sealed, box.secretKey, { ...place, node: NODE }) };

t.test('url, username and sealed password are read; a namespace and https:// are allowed', async (t) => {
  const sealed = sealFor('registry.example:5000');
  t.same(parseRegistries([
    { url: 'https://registry.example:5000/team/apps/', username: 'ci', password: sealed },
    { url: 'mirror.local' },
  ], 'config.json'), [
    { url: 'registry.example:5000/team/apps', host: 'registry.example:5000', namespace: 'team/apps', username: 'ci', password: sealed },
    { url: 'mirror.local', host: 'mirror.local', namespace: '', username: null, password: null },
  ]);
});

t.test('every wrong field is refused with an error that names it and holds no password', async (t) => {
  const sealed = sealFor('r.example');
  const rows: [object[], string, RegExp][] = [
    [[{ url: 'http://r.example' }], '/registries/0/url', /dockerd chooses the protocol itself/],
    [[{ url: 'ftp://r.example' }], '/registries/0/url', /give host\[:port\]/],
    [[{ url: 'R.Example' }], '/registries/0/url', /not host\[:port\] in lower case/],
    [[{ url: 'r.example:70000' }], '/registries/0/url', /not host\[:port\]/],
    [[{ url: 'r.example/Team' }], '/registries/0/url', /namespace .* not a lower-case repository path/],
    [[{ url: 'r.example' }, { url: 'https://r.example/' }], '/registries/1/url', /listed twice/],
    [[{ url: 'r.example', username: 'ci' }], '/registries/0/password', /give both username and password, or neither/],
    [[{ url: 'r.example', password: sealed }], '/registries/0/username', /give both/],
    [[{ url: 'r.example', username: 'a:b', password: sealed }], '/registries/0/username', /without spaces, control characters or ":"/],
    [[{ url: 'r.example', username: 'ci', password: PASSWORD }], '/registries/0/password', /is not a sealed value: a registry password is kept only sealed to the node; seal it with zone seal/],
    [[{ url: 'r.example', username: 'ci', password: 'sealed:c2VjcmV0' }], '/registries/0/password', /old format/],
  ];
  for (const [entries, field, message] of rows) {
    const err = (() => {
      try {
        parseRegistries(entries as never, 'config.json');
      } catch (e) {
        return e as ZoneError;
      }
      return null;
    })();
    t.type(err, ZoneError, JSON.stringify(entries));
    t.equal(err?.field, field);
    t.match(err?.message, message);
    t.match(err?.message, /^config\.json: registries\[\d\]\.\w+: /);
    t.notMatch(err?.message, PASSWORD);
  }
});

t.test('credentials open at the pull, for the registry they were sealed for', async (t) => {
  const [anonymous, own] = registryAccess(parseRegistries([
    { url: 'mirror.local' },
    { url: 'r.example:5000/team', username: 'ci', password: sealFor('r.example:5000') },
  ], 'config.json'), node);
  t.equal(anonymous!.credentials(), null);
  t.same(own!.credentials(), { username: 'ci', password: PASSWORD });
  t.same([own!.host, own!.namespace], ['r.example:5000', 'team']);
});

t.test('a password sealed for another registry, or copied from a blueprint owner\'s value, does not open', async (t) => {
  const other = registryAccess(parseRegistries([{ url: 'evil.example', username: 'ci', password: sealFor('r.example:5000') }], 'config.json'), node)[0]!;
  t.throws(() => other.credentials(), { code: 'POLICY', message: /registry evil\.example does not open here: .*bound to field registries\/r\.example:5000\/password, not registries\/evil\.example\/password/ });
  const owner = generateSigningKeyPair().publicKey;
  const tenant = registryAccess(parseRegistries([{ url: 'r.example', username: 'ci', password: sealFor('r.example', { owner, field: '*' }) }], 'config.json'), node)[0]!;
  t.throws(() => tenant.credentials(), { code: 'POLICY', message: /bound to owner/ });
  for (const access of [other, tenant]) {
    try {
      access.credentials();
    } catch (err) {
      t.notMatch((err as Error).message, PASSWORD);
    }
  }
});
