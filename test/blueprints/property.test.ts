// Property: any valid blueprint survives YAML -> canonical -> sign -> verify, and any
// single mutation of a signed one is refused.
import t from 'tap';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { ZoneError } from '../../lib/errors.ts';
import { canonicalBytes } from '../../blueprints/canonical.ts';
import { parseBlueprintText, validateBlueprint } from '../../blueprints/parse.ts';
import { MAX_VERSION, type Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { verifyBlueprint } from '../../blueprints/verify.ts';
import { contextFor, keys, policyOf } from './fixtures.ts';

const policy = policyOf([{ pair: keys.alice, weight: 1 }], 1);
const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const text = fc.string({ unit: 'binary', maxLength: 40 });

const workload = fc.record({
  kind: fc.constantFrom('container' as const, 'vm' as const),
  // An @ only before a digest (a pinned image).
  image: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }).filter((s) => !s.includes('@')), fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => `app@sha256:${Buffer.from(bytes).toString('hex')}`)),
  command: fc.option(fc.array(text, { minLength: 1, maxLength: 4 }), { nil: undefined }),
  env: fc.option(fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), text, { maxKeys: 4 }), { nil: undefined }),
  resources: fc.option(fc.record({
    cpus: fc.option(fc.double({ min: 0.01, max: 64, noNaN: true }), { nil: undefined }),
    memory: fc.option(fc.constantFrom('64Mi', '1Gi', '512M', '4096', '1.5Gi'), { nil: undefined }),
  }, { requiredKeys: [] }), { nil: undefined }),
  restart: fc.option(fc.constantFrom('always' as const, 'on-failure' as const, 'never' as const), { nil: undefined }),
  privileged: fc.option(fc.boolean(), { nil: undefined }),
}, { requiredKeys: ['kind', 'image'] });

/** Valid blueprints: unique workload names, no undefined fields (absent, as a parser would give). */
const blueprint = fc.record({
  name,
  version: fc.integer({ min: 1, max: MAX_VERSION }),
  node: fc.constantFrom('node1', '*'),
  expires: fc.option(fc.constantFrom('2030-01-01T00:00:00Z', '2099-12-31T23:59:59.999+02:00'), { nil: undefined }),
  workloads: fc.uniqueArray(fc.tuple(name, workload), { selector: ([n]) => n, maxLength: 5 }),
}).map((r) => JSON.parse(JSON.stringify({
  ...r,
  owner: keys.alice.publicKey,
  workloads: r.workloads.map(([n, w]) => ({ name: n, ...w })),
})) as Blueprint);

const anyNode = { ...policy, allowAnyNode: true };

t.test('random valid blueprints round-trip YAML -> canonical -> sign -> verify', async (t) => {
  fc.assert(fc.property(blueprint, (bp) => {
    const fromYaml = validateBlueprint(parseBlueprintText(toYaml(bp), 'yaml'));
    const fromJson = validateBlueprint(parseBlueprintText(JSON.stringify(bp), 'json'));
    if (!canonicalBytes(fromYaml).equals(canonicalBytes(fromJson))) return false;
    const signed = signBlueprint(fromYaml, keys.alice.secretKey);
    const again = parseBlueprintText(toYaml(signed), 'yaml');
    return verifyBlueprint(again, contextFor(anyNode)).version === bp.version;
  }), { numRuns: 200 });
  t.pass('200 blueprints');
});

type Path = (string | number)[];

/** Paths of every value inside `v` (objects, arrays and leaves). */
function paths(v: unknown, at: Path = []): Path[] {
  if (v === null || typeof v !== 'object') return [at];
  const children = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
  return [at, ...children.flatMap(([k, x]) => paths(x, [...at, k]))];
}

function mutateLeaf(v: unknown, salt: number): unknown {
  if (typeof v === 'string') return v.length ? v.slice(0, -1) + String.fromCharCode((v.charCodeAt(v.length - 1) ^ (1 + (salt % 7))) || 0x41) : 'x';
  if (typeof v === 'number') return v + 1 + (salt % 3);
  if (typeof v === 'boolean') return !v;
  if (Array.isArray(v)) return v.length && salt % 2 ? v.slice(1) : [...v, v[0] ?? 'extra'];
  return { ...(v as object), [`extra${salt % 5}`]: salt };
}

/** A copy of `root` with the value at `path` changed. */
function mutateAt(root: unknown, path: Path, salt: number): unknown {
  if (!path.length) return mutateLeaf(root, salt);
  const [head, ...rest] = path;
  if (Array.isArray(root)) return root.map((x, i) => (i === head ? mutateAt(x, rest, salt) : x));
  return { ...(root as object), [head as string]: mutateAt((root as Record<string, unknown>)[head as string], rest, salt) };
}

t.test('any single mutation of a signed blueprint fails verification', async (t) => {
  fc.assert(fc.property(blueprint, fc.nat(), fc.nat(), (bp, pick, salt) => {
    const signed = signBlueprint(bp, keys.alice.secretKey);
    const all = paths(signed);
    const mutated = mutateAt(signed, all[pick % all.length]!, salt);
    try {
      verifyBlueprint(mutated, contextFor(anyNode));
      return false;
    } catch (err) {
      return err instanceof ZoneError;
    }
  }), { numRuns: 500 });
  t.pass('500 mutations refused');
});
