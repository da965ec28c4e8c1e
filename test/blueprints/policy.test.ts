// Trust policy files: valid ones load; impossible or ambiguous ones are refused naming the file and field.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrustPolicy } from '../../blueprints/policy.ts';
import { keys, refused } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-policy-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

t.test('loads a JSON or YAML policy', async (t) => {
  const policy = { signers: [{ key: keys.alice.publicKey, weight: 2, label: 'alice' }, { key: keys.bob.publicKey, weight: 1 }], threshold: 2 };
  t.same(loadTrustPolicy(write('p.json', JSON.stringify(policy))), policy);
  t.same(loadTrustPolicy(write('p.yaml', `threshold: 2\nsigners:\n  - { key: "${keys.alice.publicKey}", weight: 2, label: alice }\n  - { key: "${keys.bob.publicKey}", weight: 1 }\n`)), policy);
});

t.test('owner grants: a list of keys or "*"; anything else is refused naming the field', async (t) => {
  const policy = { signers: [{ key: keys.alice.publicKey, weight: 1, owners: [keys.bob.publicKey] }, { key: keys.carol.publicKey, weight: 1, owners: '*' }], threshold: 1 };
  t.same(loadTrustPolicy(write('owners.json', JSON.stringify(policy))), policy);
  t.same(loadTrustPolicy(write('owners.yaml', `threshold: 1\nsigners:\n  - { key: "${keys.alice.publicKey}", weight: 1, owners: ["${keys.bob.publicKey}"] }\n  - { key: "${keys.carol.publicKey}", weight: 1, owners: "*" }\n`)), policy);
  const alice = { key: keys.alice.publicKey, weight: 1 };
  for (const owners of ['all', [], ['bob'], true]) {
    refused(t, () => loadTrustPolicy(write('bad-owners.json', JSON.stringify({ signers: [{ ...alice, owners }], threshold: 1 }))), 'INVALID', /bad-owners\.json: \/signers\/0\/owners: trust policy: expected "\*" \(any owner\) or a list of the owners/);
  }
});

t.test('refuses policies that could accept nothing, list a key twice or have unknown fields', async (t) => {
  const alice = { key: keys.alice.publicKey, weight: 1 };
  refused(t, () => loadTrustPolicy(write('high.json', JSON.stringify({ signers: [alice], threshold: 2 }))), 'INVALID', /high\.json: \/threshold: trust policy: threshold 2 is more than/);
  refused(t, () => loadTrustPolicy(write('twice.json', JSON.stringify({ signers: [alice, alice], threshold: 1 }))), 'INVALID', /twice\.json: \/signers\/1\/key: .*listed twice/);
  refused(t, () => loadTrustPolicy(write('extra.json', JSON.stringify({ signers: [alice], threshold: 1, everyone: true }))), 'INVALID', /\/everyone: trust policy: unexpected property/);
  refused(t, () => loadTrustPolicy(write('zero.json', JSON.stringify({ signers: [alice], threshold: 0 }))), 'INVALID', /\/threshold: trust policy: expected integer to be greater or equal to 1/);
  refused(t, () => loadTrustPolicy(join(dir, 'missing.json')), 'INVALID', /missing\.json: cannot read trust policy \(ENOENT\)/);
});
