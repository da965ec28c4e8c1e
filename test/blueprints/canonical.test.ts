// RFC 8785 examples through canonicalJson, the same text as the canonicalize library for
// any JSON data, and the canonical bytes of a blueprint (both ways of making them).
import t from 'tap';
import { stringify as toYaml } from 'yaml';
import { ZoneError } from '../../lib/errors.ts';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonicalBytes, canonicalBytesOfValid, canonicalJson, DOMAIN_TAG } from '../../blueprints/canonical.ts';
import { assertJsonValue } from '../../blueprints/json-value.ts';
import { validateBlueprintTelling } from '../../blueprints/validate.ts';
import { parseBlueprintText } from '../../blueprints/parse.ts';
import { EXAMPLE_YAML, exampleBlueprint, keys } from './fixtures.ts';

t.test('RFC 8785 section 3.2.2: numbers, string escapes and literals', async (t) => {
  const input = '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}';
  t.equal(canonicalJson(JSON.parse(input)),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
});

t.test('RFC 8785 section 3.2.3: keys sort by UTF-16 code units', async (t) => {
  const input = {
    '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis',
  };
  // Read the order from the text: JSON.parse would put the integer-like key "1" first.
  const text = canonicalJson(input);
  const positions = ['\\r', '"1"', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) => text.indexOf(k));
  t.same(positions, [...positions].sort((a, b) => a - b), 'CR, 1, U+0080, ö, €, 😀, U+FB33');
});

t.test('RFC 8785 appendix B: IEEE 754 numbers serialise as ECMAScript does', async (t) => {
  const cases: [string, string][] = [
    ['0000000000000000', '0'], ['8000000000000000', '0'], ['0000000000000001', '5e-324'], ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'], ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'], ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'], ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'], ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'], ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'], ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'], ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'], ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'], ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'], ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [ieee, expected] of cases) t.equal(canonicalJson(Buffer.from(ieee, 'hex').readDoubleBE(0)), expected, ieee);
  t.throws(() => canonicalJson(Number.NaN), ZoneError, 'NaN is refused');
  t.throws(() => canonicalJson(Number.POSITIVE_INFINITY), ZoneError, 'Infinity is refused');
});

t.test('string escapes: control characters as \\uXXXX in lower case, short forms where JSON has them', async (t) => {
  t.equal(canonicalJson('\u0000\u0001\b\t\n\f\r\u001f"\\/\u007f\u00e9'), '"\\u0000\\u0001\\b\\t\\n\\f\\r\\u001f\\"\\\\/\u007f\u00e9"');
  t.throws(() => canonicalJson('\ud800'), ZoneError, 'a lone surrogate is refused');
});

t.test('nested objects and arrays keep array order and sort every level of keys', async (t) => {
  t.equal(canonicalJson({ b: [{ z: 1, a: { y: [3, 1], x: null } }], a: {} }), '{"a":{},"b":[{"a":{"x":null,"y":[3,1]},"z":1}]}');
});

t.test('canonical bytes: domain tag, no signatures, and the same for YAML and JSON of one blueprint', async (t) => {
  const bp = exampleBlueprint(keys.alice);
  const bytes = canonicalBytes(bp);
  t.ok(bytes.toString('utf8').startsWith(DOMAIN_TAG), 'starts with the domain tag');
  t.same(canonicalBytes({ ...bp, signatures: [{ key: keys.bob.publicKey, sig: 'A'.repeat(86) + '==' }] }), bytes, 'signatures are not covered');
  const fromJson = parseBlueprintText(JSON.stringify(bp, null, 4), 'json');
  const fromYaml = parseBlueprintText(toYaml(bp), 'yaml');
  t.same(canonicalBytes(fromJson), bytes, 'JSON text gives the same bytes');
  t.same(canonicalBytes(fromYaml), bytes, 'YAML text gives the same bytes');
  const flow = parseBlueprintText(EXAMPLE_YAML.replace(/^owner: .*$/m, `owner: "${keys.alice.publicKey}"`), 'yaml');
  t.same(canonicalBytes(flow), bytes, 'the hand-written YAML (comments, flow style) gives the same bytes');
});

// The writer of plain JSON data (canonical.ts) against the general library it replaced on that path.
const jsonData = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' },
    fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(),
    fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.constantFrom('', '"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ud83d\ude00', '/'),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('1', '10', '9', '\ud83d\ude00', '\ufb33', '\u20ac', 'a', 'B')), tie('value'), { maxKeys: 6 })),
})).value;

t.test('canonical JSON of any JSON data equals the canonicalize library: the same bytes to sign', async (t) => {
  fc.assert(fc.property(jsonData, (value) => {
    // What the library refuses (a lone surrogate), the fast writer refuses too.
    let expected: string | Error;
    try {
      expected = canonicalize(value) ?? '';
    } catch (err) {
      expected = err as Error;
    }
    if (expected instanceof Error) return t.throws(() => canonicalJson(value), ZoneError) !== undefined;
    return canonicalJson(value) === expected;
  }), { numRuns: 3000 });
});

t.test('a blueprint whose objects below the top have their keys in canonical order gets the same bytes by the faster way', async (t) => {
  const bp = exampleBlueprint(keys.alice);
  const ordered = JSON.parse(canonicalJson(bp)) as typeof bp;
  const told = validateBlueprintTelling(ordered);
  t.equal(told.nestedKeysInCanonicalOrder, true, 'keys in canonical order below the top are told');
  t.same(canonicalBytesOfValid(told.blueprint, true), canonicalBytes(bp), 'same bytes as the general way');
  t.equal(validateBlueprintTelling(JSON.parse(JSON.stringify(bp))).nestedKeysInCanonicalOrder, false, 'keys in the order written are told apart');
  // The top level may be in any order (signatures sit last): the faster way sorts it itself.
  const shuffled = Object.fromEntries(Object.entries(ordered).reverse()) as typeof bp;
  t.equal(validateBlueprintTelling(shuffled).nestedKeysInCanonicalOrder, true);
  t.same(canonicalBytesOfValid(shuffled, true), canonicalBytes(bp));
  // Integer-like keys come first in a JavaScript object, out of RFC 8785 order ("10" < "9").
  t.same(assertJsonValue({ a: { '9': 1, '10': 2 } }), { nestedKeysInCanonicalOrder: false }, 'integer-like keys in JavaScript order are not canonical order');
  t.same(assertJsonValue({ a: { '10': 2, '9': 1 } }), { nestedKeysInCanonicalOrder: false });
  t.same(assertJsonValue({ b: [{ a: 1, b: { c: 1, d: 2 } }], a: 1 }), { nestedKeysInCanonicalOrder: true });
});
