// The front door: what verifyBlueprint accepts, and each way it refuses, with a clear
// reason and never an exception other than ZoneError.
import t from 'tap';
import nacl from 'tweetnacl';
import { ZoneError, type ZoneErrorCode } from '../../lib/errors.ts';
import { canonicalBytes, canonicalJson } from '../../blueprints/canonical.ts';
import { decodeBlueprintBytes, parseBlueprintText } from '../../blueprints/parse.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { verifyBlueprint, verifyBlueprintWithSigners, type VerifyContext } from '../../blueprints/verify.ts';
import { contextFor, exampleBlueprint, keys, policyOf, refused } from './fixtures.ts';

const bp = exampleBlueprint(keys.alice);
// Bob and carol may act for alice (the owner of bp); bob's grant is a list, carol's "*".
const policy = policyOf([
  { pair: keys.alice, weight: 1, label: 'alice' },
  { pair: keys.bob, weight: 1, label: 'bob', owners: [keys.alice.publicKey] },
  { pair: keys.carol, weight: 2, owners: '*' },
], 2);
const byAliceAndBob = signBlueprint(signBlueprint(bp, keys.alice.secretKey), keys.bob.secretKey);


t.test('accepts a blueprint signed by trusted signers reaching the threshold', async (t) => {
  const { blueprint, signers } = verifyBlueprintWithSigners(byAliceAndBob, contextFor(policy));
  t.equal(blueprint.name, 'video-pipeline');
  t.same(signers, ['alice', 'bob']);
  t.ok(verifyBlueprint(signBlueprint(bp, keys.carol.secretKey), contextFor(policy)), 'one signer of weight 2 is enough');
  t.ok(verifyBlueprint(byAliceAndBob, contextFor(policy, { storedVersion: () => 3 })), 'a newer version than the stored one');
});

t.test('a flipped bit in any field is refused', async (t) => {
  const text = JSON.stringify(byAliceAndBob);
  const start = text.indexOf('"signatures"');
  let checked = 0;
  // Flip the lowest bit of every character of the signed part that stays printable ASCII.
  for (let i = 0; i < start; i += 7) {
    const c = text.charCodeAt(i) ^ 1;
    if (c < 0x20 || c > 0x7e) continue;
    const mutated = text.slice(0, i) + String.fromCharCode(c) + text.slice(i + 1);
    let value: unknown;
    try {
      value = parseBlueprintText(mutated, 'json');
    } catch (err) {
      t.ok(err instanceof ZoneError, 'a broken text is a ZoneError');
      continue;
    }
    if (canonicalJson(value) === canonicalJson(byAliceAndBob)) continue; // e.g. whitespace outside strings
    t.throws(() => verifyBlueprint(value, contextFor(policy)), ZoneError);
    checked++;
  }
  t.ok(checked > 100, `${checked} mutations refused`);
  const sig = byAliceAndBob.signatures![0]!.sig;
  const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  refused(t, () => verifyBlueprint({ ...byAliceAndBob, signatures: [{ ...byAliceAndBob.signatures![0]!, sig: flipped }, byAliceAndBob.signatures![1]!] }, contextFor(policy)), 'SIGNATURE', /does not verify/, '/signatures/0/sig');
});

t.test('a signature moved to another blueprint does not verify', async (t) => {
  const other = { ...bp, name: 'other' };
  refused(t, () => verifyBlueprint({ ...other, signatures: byAliceAndBob.signatures }, contextFor(policy)), 'SIGNATURE', /does not verify/);
});

t.test('a key signing twice is refused; untrusted keys count zero; below the threshold is refused', async (t) => {
  const byAlice = signBlueprint(bp, keys.alice.secretKey);
  const twice = { ...byAlice, signatures: [...byAlice.signatures!, ...byAlice.signatures!] };
  refused(t, () => verifyBlueprint(twice, contextFor(policy)), 'SIGNATURE', /signs twice/, '/signatures/1/key');
  refused(t, () => verifyBlueprint(twice, contextFor({ ...policy, threshold: 1 })), 'SIGNATURE', /signs twice/);
  refused(t, () => verifyBlueprint(signBlueprint(byAlice, keys.mallory.secretKey), contextFor(policy)), 'POLICY', /untrusted/);
  refused(t, () => verifyBlueprint(signBlueprint(bp, keys.mallory.secretKey), contextFor(policy)), 'POLICY', /weigh 0/);
  refused(t, () => verifyBlueprint(byAlice, contextFor(policy)), 'POLICY', /needs 2/, '/signatures');
  refused(t, () => verifyBlueprint(bp, contextFor(policy)), 'SIGNATURE', /not signed/);
});

t.test('a signer counts only for the owners the policy grants it: its own key by default, listed ones, or any with "*"', async (t) => {
  const operator = { pair: keys.carol, weight: 1, label: 'operator' };
  const forBob = exampleBlueprint(keys.bob);
  const byOperator = signBlueprint(forBob, keys.carol.secretKey);
  // No grant: refused, naming the owner and the signer that may not act for it.
  const ownOnly = policyOf([operator], 1);
  refused(t, () => verifyBlueprint(byOperator, contextFor(ownOnly)), 'POLICY', new RegExp(`owner ${keys.bob.publicKey.replace(/[+/]/g, '\\$&')} did not sign this blueprint, and operator may not act for it`), '/owner');
  refused(t, () => verifyBlueprint(byOperator, contextFor(policyOf([{ ...operator, owners: [keys.alice.publicKey] }], 1))), 'POLICY', /operator may not act for it/, '/owner');
  // Granted: by list or by "*"; its own key needs no grant.
  t.same(verifyBlueprintWithSigners(byOperator, contextFor(policyOf([{ ...operator, owners: [keys.alice.publicKey, keys.bob.publicKey] }], 1))).signers, ['operator']);
  t.ok(verifyBlueprint(byOperator, contextFor(policyOf([{ ...operator, owners: '*' }], 1))));
  t.ok(verifyBlueprint(signBlueprint(exampleBlueprint(keys.carol), keys.carol.secretKey), contextFor(ownOnly)), 'a signer acts for its own key');
  // The owner signing its own blueprint counts when it is a trusted signer.
  t.ok(verifyBlueprint(signBlueprint(forBob, keys.bob.secretKey), contextFor(policyOf([operator, { pair: keys.bob, weight: 1 }], 1))));
  // Only granted signatures count toward the threshold.
  const two = policyOf([{ ...operator, owners: '*' }, { pair: keys.alice, weight: 1, label: 'alice' }], 2);
  refused(t, () => verifyBlueprint(signBlueprint(byOperator, keys.alice.secretKey), contextFor(two)), 'POLICY', /alice may not act for it \(signatures allowed for this owner weigh 1, the trust policy needs 2/);
  // Tombstones too: an ungranted signer cannot delete another owner's blueprint.
  const tombstone = signBlueprint({ name: forBob.name, version: 5, owner: keys.bob.publicKey, node: 'node1', delete: true }, keys.carol.secretKey);
  refused(t, () => verifyBlueprint(tombstone, contextFor(ownOnly)), 'POLICY', /may not act for it/, '/owner');
  t.ok(verifyBlueprint(tombstone, contextFor(policyOf([{ ...operator, owners: '*' }], 1))));
});

t.test('re-signing with the same key replaces its signature', async (t) => {
  const twice = signBlueprint(signBlueprint(bp, keys.alice.secretKey), keys.alice.secretKey);
  t.equal(twice.signatures?.length, 1);
});

t.test('replayed, older, expired and wrong-node blueprints are refused', async (t) => {
  refused(t, () => verifyBlueprint(byAliceAndBob, contextFor(policy, { storedVersion: () => 4 })), 'STALE', /not greater than the stored version 4/, '/version');
  refused(t, () => verifyBlueprint(byAliceAndBob, contextFor(policy, { storedVersion: () => 9 })), 'STALE', /stored version 9/);
  refused(t, () => verifyBlueprint(byAliceAndBob, contextFor(policy, { now: new Date('2027-01-01T00:00:01Z') })), 'STALE', /expired/, '/expires');
  refused(t, () => verifyBlueprint(byAliceAndBob, contextFor(policy, { nodeId: 'node2' })), 'POLICY', /for node node1, this is node node2/, '/node');
  const anyNode = signBlueprint(signBlueprint({ ...bp, node: '*' }, keys.alice.secretKey), keys.bob.secretKey);
  refused(t, () => verifyBlueprint(anyNode, contextFor(policy)), 'POLICY', /"\*" is not allowed/);
  t.ok(verifyBlueprint(anyNode, contextFor({ ...policy, allowAnyNode: true })), 'node "*" where the policy allows it');
});

t.test('a signature over another domain prefix, or none, does not verify', async (t) => {
  const body = canonicalBytes(bp).subarray('zone-blueprint-v1\n'.length);
  for (const prefix of ['', 'zone-blueprint-v2\n', 'zone-something-else\n']) {
    const sig = Buffer.from(nacl.sign.detached(Buffer.concat([Buffer.from(prefix), body]), keys.carol.secretKey)).toString('base64');
    refused(t, () => verifyBlueprint({ ...bp, signatures: [{ key: keys.carol.publicKey, sig }] }, contextFor(policy)), 'SIGNATURE', /does not verify/);
  }
});

const adversarialTexts: [string, string, 'yaml' | 'json', ZoneErrorCode, RegExp][] = [
  ['__proto__ key in JSON', '{"name":"x","__proto__":{"admin":true}}', 'json', 'INVALID', /__proto__/],
  ['constructor key in JSON', '{"name":"x","constructor":{"prototype":1}}', 'json', 'INVALID', /constructor/],
  ['__proto__ key in YAML', 'name: x\n__proto__: { admin: true }\n', 'yaml', 'INVALID', /__proto__/],
  ['prototype key nested in YAML', 'name: x\nworkloads: [{ prototype: 1 }]\n', 'yaml', 'INVALID', /prototype/],
  ['deep JSON nesting', '['.repeat(200_000) + ']'.repeat(200_000), 'json', 'INVALID', /nest|deep/],
  ['deep JSON object nesting', '{"a":'.repeat(100) + '1' + '}'.repeat(100), 'json', 'INVALID', /nested deeper than 32/],
  ['deep YAML nesting', '['.repeat(100_000) + ']'.repeat(100_000), 'yaml', 'INVALID', /./],
  ['huge text', `name: "${'a'.repeat(2 * 1024 * 1024)}"`, 'yaml', 'TOO_LARGE', /larger than 1048576 bytes/],
  ['huge string', `{"name":"${'a'.repeat(70_000)}"}`, 'json', 'INVALID', /longer than 65536/],
  ['huge array', `{"workloads":[${Array(5000).fill('1').join(',')}]}`, 'json', 'INVALID', /longer than 4096 items/],
  ['lone surrogate', '{"name":"\\udc00x"}', 'json', 'INVALID', /lone UTF-16 surrogate/],
  ['lone surrogate in a key', '{"\\ud800":1}', 'json', 'INVALID', /not valid Unicode/],
  ['number beyond 2^53', '{"version": 9007199254740993}', 'json', 'INVALID', /beyond 2\^53/],
  ['negative number beyond 2^53 in YAML', 'version: -90071992547409930\n', 'yaml', 'INVALID', /beyond 2\^53/],
  ['YAML alias bomb', ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghij'[i]}`).join(',')}]`)].join('\n'), 'yaml', 'TOO_LARGE', /more than 64 YAML aliases/],
  ['YAML !!binary tag', 'name: !!binary aGVsbG8=\n', 'yaml', 'INVALID', /tags are not accepted/],
  ['YAML !!js/function tag', 'name: !!js/function "function(){}"\n', 'yaml', 'INVALID', /tag/],
  ['YAML custom tag', 'name: !custom x\n', 'yaml', 'INVALID', /tag/],
  ['YAML explicit !!str tag', 'name: !!str 1\n', 'yaml', 'INVALID', /tags are not accepted/],
  ['YAML merge key', 'base: &b { a: 1 }\nname:\n  <<: *b\n', 'yaml', 'INVALID', /./],
  ['YAML duplicate keys', 'name: a\nname: b\n', 'yaml', 'INVALID', /repeats a key \(keys must be unique\)/],
  ['two YAML documents', 'name: a\n---\nname: b\n', 'yaml', 'INVALID', /./],
  ['broken JSON', '{"name": "secret-value"', 'json', 'INVALID', /not valid JSON/],
];

t.test('hostile texts are refused with a reason, and no other exception escapes', async (t) => {
  for (const [what, text, format, code, reason] of adversarialTexts) {
    t.test(what, async (t) => refused(t, () => verifyBlueprint(parseBlueprintText(text, format), contextFor(policy)), code, reason));
  }
});

t.test('a parse error does not repeat the text (it may hold a secret)', async (t) => {
  try {
    parseBlueprintText('{"env": {"TOKEN": "hunter2"', 'json');
  } catch (err) {
    t.notMatch((err as Error).message, /hunter2/);
  }
});

t.test('non-UTF-8 bytes are refused', async (t) => {
  refused(t, () => decodeBlueprintBytes(Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xff, 0xfe])), 'INVALID', /not valid UTF-8/);
  refused(t, () => decodeBlueprintBytes(Buffer.from([0xed, 0xa0, 0x80])), 'INVALID', /not valid UTF-8/, undefined);
  t.equal(decodeBlueprintBytes(Buffer.from('\ufeffname: x', 'utf8')), 'name: x', 'a byte-order mark is dropped');
});

t.test('values that are not JSON data are refused when handed over directly', async (t) => {
  const ctx: VerifyContext = contextFor(policy);
  const withProto = JSON.parse('{"__proto__": 1}') as object;
  refused(t, () => verifyBlueprint({ ...byAliceAndBob, ...withProto }, ctx), 'INVALID', /__proto__/);
  refused(t, () => verifyBlueprint({ ...byAliceAndBob, version: 2 ** 60 }, ctx), 'INVALID', /2\^53/, '/version');
  refused(t, () => verifyBlueprint({ ...byAliceAndBob, name: () => 1 } as unknown as Blueprint, ctx), 'INVALID', /function/);
  refused(t, () => verifyBlueprint(new Date(), ctx), 'INVALID', /plain JSON object/);
  refused(t, () => verifyBlueprint(null, ctx), 'INVALID', /is an object/);
  refused(t, () => verifyBlueprint('name: x', ctx), 'INVALID');
});
