// zone keygen, sign and verify, run as child processes: the operator's offline workflow.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runZone } from '../helpers/zone-cli.ts';
import { EXAMPLE_YAML } from '../blueprints/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-cli-sign-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const zone = (...args: string[]) => runZone(args, { cwd: dir });

t.test('keygen, sign with two keys in two steps, verify against a 2-of-2 policy', async (t) => {
  const alice = await zone('keygen', '--out', 'alice.json');
  t.equal(alice.code, 0, alice.stderr);
  t.match(alice.stdout, /^ed25519:[A-Za-z0-9+/]{43}=\n$/);
  t.equal(statSync(join(dir, 'alice.json')).mode & 0o777, 0o600, 'key file mode 0600');
  const again = await zone('keygen', '--out', 'alice.json');
  t.equal(again.code, 1, 'an existing key file is not overwritten');
  t.match(again.stderr, /^zone: alice\.json exists; not overwriting a key file\n$/);
  const bob = await zone('keygen', '--out', 'bob.json');
  const [a, b] = [alice.stdout.trim(), bob.stdout.trim()];

  // The CLI checks expiry against the real clock: push it far out so the test never expires.
  writeFileSync(join(dir, 'bp.yaml'), EXAMPLE_YAML.replace(/^owner: .*$/m, `owner: ${a}`).replace(/^expires: .*$/m, 'expires: 2999-01-01T00:00:00Z'));
  // Bob co-signs alice's blueprints: the policy grants him her key.
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({ signers: [{ key: a, weight: 1, label: 'alice' }, { key: b, weight: 1, label: 'bob', owners: [a] }], threshold: 2 }));

  const one = await zone('sign', 'bp.yaml', '--key', 'alice.json', '--out', 'one.yaml');
  t.equal(one.code, 0, one.stderr);
  t.match(readFileSync(join(dir, 'one.yaml'), 'utf8'), /^# A camera container/, 'the YAML comments are kept');
  const short = await zone('verify', 'one.yaml', '--policy', 'policy.json');
  t.same([short.code, short.stderr], [1, 'zone: one.yaml: /signatures: trusted signatures weigh 1, the trust policy needs 2\n']);

  const two = await zone('sign', 'one.yaml', '--key', 'bob.json', '--out', 'two.yaml');
  t.equal(two.code, 0, two.stderr);
  const ok = await zone('verify', 'two.yaml', '--policy', 'policy.json', '--node', 'node1', '--stored-version', '3');
  t.same([ok.code, ok.stdout], [0, 'ok: video-pipeline v4, signers alice, bob\n']);

  const replay = await zone('verify', 'two.yaml', '--policy', 'policy.json', '--stored-version', '4');
  t.same([replay.code, replay.stderr], [1, 'zone: two.yaml: /version: version 4 is not greater than the stored version 4 (a replay or an older blueprint)\n']);
  const elsewhere = await zone('verify', 'two.yaml', '--policy', 'policy.json', '--node', 'node2');
  t.same([elsewhere.code, elsewhere.stderr], [1, 'zone: two.yaml: /node: blueprint is for node node1, this is node node2\n']);

  writeFileSync(join(dir, 'tampered.yaml'), readFileSync(join(dir, 'two.yaml'), 'utf8').replace('sleep 1', 'sleep 2'));
  const tampered = await zone('verify', 'tampered.yaml', '--policy', 'policy.json');
  t.equal(tampered.code, 1);
  t.match(tampered.stderr, /^zone: tampered\.yaml: \/signatures\/0\/sig: signature 0 by ed25519:\S+ does not verify over this blueprint\n$/);
});

t.test('a blueprint for owner B signed only by an operator without a grant for B fails verify, naming B; with owners "*" it passes', async (t) => {
  const operator = (await zone('keygen', '--out', 'operator.json')).stdout.trim();
  const owner = (await zone('keygen', '--out', 'owner-b.json')).stdout.trim();
  writeFileSync(join(dir, 'b.json'), JSON.stringify({ name: 'web', version: 1, owner, node: 'node1', workloads: [{ name: 'www', kind: 'container', image: 'zone/busybox' }] }));
  t.equal((await zone('sign', 'b.json', '--key', 'operator.json', '--out', 'b.signed.json')).code, 0);
  writeFileSync(join(dir, 'own.json'), JSON.stringify({ signers: [{ key: operator, weight: 1, label: 'operator' }], threshold: 1 }));
  const refused = await zone('verify', 'b.signed.json', '--policy', 'own.json');
  t.same([refused.code, refused.stderr], [1, `zone: b.signed.json: /owner: owner ${owner} did not sign this blueprint, and operator may not act for it (signatures allowed for this owner weigh 0, the trust policy needs 1; a signer's "owners" in the trust policy grants it other owners)\n`]);
  writeFileSync(join(dir, 'any.json'), JSON.stringify({ signers: [{ key: operator, weight: 1, label: 'operator', owners: '*' }], threshold: 1 }));
  const ok = await zone('verify', 'b.signed.json', '--policy', 'any.json');
  t.same([ok.code, ok.stdout], [0, 'ok: web v1, signers operator\n']);
});

t.test('JSON in, JSON out, and signing both keys at once', async (t) => {
  await zone('keygen', '--out', 'k1.json');
  await zone('keygen', '--out', 'k2.json');
  const owner = JSON.parse(readFileSync(join(dir, 'k1.json'), 'utf8')).publicKey as string;
  writeFileSync(join(dir, 'bp.json'), JSON.stringify({ name: 'web', version: 1, owner, node: 'node1', workloads: [{ name: 'www', kind: 'container', image: 'zone/busybox' }] }));
  const signed = await zone('sign', 'bp.json', '--key', 'k1.json', '--key', 'k2.json');
  t.equal(signed.code, 0, signed.stderr);
  const value = JSON.parse(signed.stdout) as { signatures: unknown[] };
  t.equal(value.signatures.length, 2, 'two signatures on stdout, as JSON');
});

t.test('mistakes are one line naming the file and field, exit 1; usage mistakes exit 2', async (t) => {
  writeFileSync(join(dir, 'bad.yaml'), 'name: Bad Name\nversion: 1\n');
  const bad = await zone('sign', 'bad.yaml', '--key', 'alice.json');
  t.same([bad.code, bad.stderr], [1, 'zone: bad.yaml: /owner: required field is missing\n']);
  const missing = await zone('verify', 'nope.yaml', '--policy', 'policy.json');
  t.same([missing.code, missing.stderr], [1, 'zone: nope.yaml: cannot read (ENOENT)\n']);
  const noPolicy = await zone('verify', 'two.yaml');
  t.equal(noPolicy.code, 2, 'a missing required option is a usage error');
  const badVersion = await zone('verify', 'two.yaml', '--policy', 'policy.json', '--stored-version', 'ten');
  t.equal(badVersion.code, 2);
  t.notMatch(bad.stderr + missing.stderr, /\n\s+at /, 'no stack trace');
});
