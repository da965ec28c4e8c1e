import { mkdtempSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BOX_KEY_FILE, loadOrCreateIdentity, nodeIdOf, SIGNING_KEY_FILE } from '../../appliance/identity.ts';
import { NODE_PATTERN } from '../../blueprints/schema.ts';
import { sealSecret, openSealed } from '../../blueprints/seal.ts';

t.test('the first start creates both keys 0600; later starts read the same identity', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zone-identity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadOrCreateIdentity(dir);
  t.equal(statSync(join(dir, SIGNING_KEY_FILE)).mode & 0o777, 0o600);
  t.equal(statSync(join(dir, BOX_KEY_FILE)).mode & 0o777, 0o600);
  const again = loadOrCreateIdentity(dir);
  t.equal(again.id, first.id);
  t.equal(again.box.publicKey, first.box.publicKey);
  const place = { owner: 'ed25519:' + 'A'.repeat(43) + '=', node: first.id, blueprint: 'bp', field: '*' };
  t.equal(openSealed(sealSecret('s', first.box.publicKey, place), again.box.secretKey, place), 's', 'the box key opens what was sealed to it');
  chmodSync(join(dir, BOX_KEY_FILE), 0o644);
  t.throws(() => loadOrCreateIdentity(dir), /readable by others/);
});

t.test('the node id is 20 lower-case base32 characters of the key hash and fits the blueprint schema', async (t) => {
  const id = nodeIdOf('ed25519:' + 'A'.repeat(43) + '=');
  t.match(id, /^[a-z2-7]{20}$/);
  t.match(id, new RegExp(NODE_PATTERN));
  t.equal(nodeIdOf('ed25519:' + 'A'.repeat(43) + '='), id, 'deterministic');
  t.not(nodeIdOf('ed25519:' + 'B'.repeat(43) + '='), id);
});
