// Blueprint and trust-policy texts are read in time linear in their size: every limit
// is checked while the text is read (so a hostile text is refused when it passes one,
// not after it was all parsed), duplicate YAML keys are found with a Set, and no
// refusal quotes the text.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { ZoneErrorCode } from '../../lib/errors.ts';
import t from 'tap';
import { LIMITS, assertJsonValue } from '../../blueprints/json-value.ts';
import { parseBlueprintText } from '../../blueprints/parse.ts';
import { loadTrustPolicy } from '../../blueprints/policy.ts';
import { HOSTILE_BODIES } from '../helpers/hostile-bodies.ts';
import { EXAMPLE_YAML, refused } from './fixtures.ts';

const yamlMap = (n: number, key = (i: number) => `k${i}`) => Array.from({ length: n }, (_, i) => `${key(i)}: ${i}`).join('\n');
const jsonArray = (n: number) => `[${Array(n).fill('0').join(',')}]`;

t.test('each limit is refused alike in YAML and JSON, with what was exceeded', async (t) => {
  const rows: [string, string, 'yaml' | 'json', ZoneErrorCode, RegExp][] = [
    ['keys of one YAML map', yamlMap(LIMITS.maxObjectKeys + 1), 'yaml', 'INVALID', /object with more than 1024 keys/],
    ['keys of one JSON object', `{${Array.from({ length: LIMITS.maxObjectKeys + 1 }, (_, i) => `"k${i}":0`).join(',')}}`, 'json', 'INVALID', /object with more than 1024 keys/],
    ['items of a YAML flow sequence', jsonArray(LIMITS.maxArrayLength + 1), 'yaml', 'INVALID', /array longer than 4096 items/],
    ['items of a YAML block sequence', Array(LIMITS.maxArrayLength + 1).fill('- 0').join('\n'), 'yaml', 'INVALID', /array longer than 4096 items/],
    ['items of a JSON array', jsonArray(LIMITS.maxArrayLength + 1), 'json', 'INVALID', /array longer than 4096 items/],
    ['YAML nesting', `${'['.repeat(40)}${']'.repeat(40)}`, 'yaml', 'INVALID', /nested deeper than 32 levels/],
    ['YAML block nesting', Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'), 'yaml', 'INVALID', /nested deeper than 32 levels/],
    ['YAML compact sequence nesting', `${'- '.repeat(40)}x`, 'yaml', 'INVALID', /nested deeper than 32 levels/],
    ['JSON nesting', `${'['.repeat(40)}${']'.repeat(40)}`, 'json', 'INVALID', /nested deeper than 32 levels/],
    ['YAML nodes', Array.from({ length: 3000 }, () => '- {a: 1, b: [1, 2]}').join('\n').replace(/^/, 'x:\n').replace(/\n- /g, '\n  - '), 'yaml', 'TOO_LARGE', /more than 20000 YAML nodes/],
    ['JSON values', `[${Array.from({ length: 2000 }, () => '[1,2,3,4,5,6,7,8,9,10,11]').join(',')}]`, 'json', 'TOO_LARGE', /more than 20000 values/],
    ['YAML aliases', `a: &a 1\nb: [${Array(LIMITS.maxAliases + 1).fill('*a').join(', ')}]`, 'yaml', 'TOO_LARGE', /more than 64 YAML aliases/],
    ['text size', `name: "${'a'.repeat(LIMITS.maxTextBytes)}"`, 'yaml', 'TOO_LARGE', /larger than 1048576 bytes/],
  ];
  for (const [what, text, format, code, reason] of rows) t.test(what, async (t) => refused(t, () => parseBlueprintText(text, format), code, reason));
  t.equal(Object.keys(parseBlueprintText(yamlMap(LIMITS.maxObjectKeys), 'yaml') as object).length, LIMITS.maxObjectKeys, 'a map at the limit is read');
  t.equal((parseBlueprintText(jsonArray(LIMITS.maxArrayLength), 'json') as unknown[]).length, LIMITS.maxArrayLength, 'an array at the limit is read');
  t.ok(parseBlueprintText(`${'['.repeat(33)}${']'.repeat(33)}`, 'json'), 'nesting at the limit is read (JSON)');
  t.ok(parseBlueprintText(`${'['.repeat(33)}${']'.repeat(33)}`, 'yaml'), 'nesting at the limit is read (YAML)');
});

t.test('YAML keys are unique as the JSON object will hold them, checked with a Set', async (t) => {
  refused(t, () => parseBlueprintText('a: 1\nb: 2\na: 3\n', 'yaml'), 'INVALID', /repeats a key/);
  refused(t, () => parseBlueprintText('1: a\n"1": b\n', 'yaml'), 'INVALID', /repeats a key/, undefined);
  refused(t, () => parseBlueprintText('~: a\n"": b\n', 'yaml'), 'INVALID', /repeats a key/);
  refused(t, () => parseBlueprintText('? [a, b]\n: c\n', 'yaml'), 'INVALID', /plain value, not a collection or an alias/);
  refused(t, () => parseBlueprintText('a: &x k\n*x : 1\n', 'yaml'), 'INVALID', /plain value, not a collection or an alias/);
  const many = yamlMap(1000, (i) => `key-${i}`);
  t.same(Object.keys(parseBlueprintText(`${many}\n`, 'yaml') as object).length, 1000, '1000 distinct keys are read');
  t.ok(parseBlueprintText(EXAMPLE_YAML, 'yaml'), 'the example still reads');
});

t.test('the JSON pre-check counts no bracket or comma inside a string, and refuses nothing JSON.parse and assertJsonValue accept', async (t) => {
  t.same(parseBlueprintText('{"a": "[[[{{{,,,\\"]]]", "b": ["\\\\", ","]}', 'json'), { a: '[[[{{{,,,"]]]', b: ['\\', ','] });
  const verdict = (fn: () => unknown) => {
    try {
      fn();
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
    const text = JSON.stringify(value);
    return verdict(() => parseBlueprintText(text, 'json')) === verdict(() => assertJsonValue(JSON.parse(text)));
  }), { numRuns: 500 });
});

t.test('1 MiB hostile texts are refused long before a quadratic parse would end, without quoting them', async (t) => {
  for (const hostile of HOSTILE_BODIES) {
    const started = performance.now();
    let message = '';
    try {
      parseBlueprintText(hostile.body, hostile.type === 'application/json' ? 'json' : 'yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    const ms = performance.now() - started;
    t.comment(`${hostile.what}: ${message} (${ms.toFixed(0)} ms)`);
    t.match(message, /more than|longer than|deeper than|alias/, `${hostile.what}: refused, saying which bound`);
    // 200 KB of distinct keys held the old parser 6 s, 870 KB 71 s; the API test holds these to 500 ms.
    t.ok(ms < 2000, `${hostile.what}: in ${ms.toFixed(0)} ms`);
    t.notMatch(message, /lol|: 1\b|\[\[/, `${hostile.what}: the message does not quote the text`);
  }
});

t.test('trust policies are read by the same bounded parser', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zone-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, 'threshold: 1\nthreshold: 2\nsigners: []\n');
  t.throws(() => loadTrustPolicy(path), /policy\.yaml: a YAML map repeats a key/);
  writeFileSync(path, `signers: [${jsonArray(LIMITS.maxArrayLength + 1).slice(1, -1)}]\nthreshold: 1\n`);
  t.throws(() => loadTrustPolicy(path), /policy\.yaml: array longer than 4096 items/);
});
