// Mutated blueprints for fuzzing the submit route: from seed values (the examples,
// blueprints signed for the node under test), bit flips, truncations, spliced YAML
// syntax, key shuffles (which keep a signature valid: the canonical bytes do not
// change), type swaps and huge values, as JSON or YAML. Deterministic for a seed.
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import type { Blueprint } from '../../blueprints/schema.ts';

export interface Mutation {
  /** What was done, for a failure message. */
  what: string;
  body: Buffer;
  type: 'application/json' | 'application/yaml';
  /** The value is the seed's (only its text changed): a signed seed is still signed. */
  keepsSignatures: boolean;
}

/** mulberry32: a small seeded PRNG, so that a failing case can be made again from its seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const SPLICES = ['&a ', '*a', '!!binary ', '<<: ', '{', '}', '[', ']', ':', '- ', '"', "'", '\\u0000', '\n  ', '\t', '#', '---\n', '? ', '|', '\ud800', '__proto__: 1\n', '%YAML 1.1\n'];

export function mutations(seeds: readonly Json[], seed: number): () => Mutation {
  const rnd = random(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

  function shuffleKeys(v: Json): Json {
    if (Array.isArray(v)) return v.map(shuffleKeys);
    if (v === null || typeof v !== 'object') return v;
    const entries = Object.entries(v).map(([k, x]) => [k, shuffleKeys(x)] as const);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    return Object.fromEntries(entries);
  }

  /** Every place in `v` that holds a value: [container, key]. */
  function places(v: Json, out: [Json[] | Record<string, Json>, string | number][] = []) {
    if (Array.isArray(v)) v.forEach((x, i) => { out.push([v, i]); places(x, out); });
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) { out.push([v, k]); places(x, out); }
    return out;
  }

  /** Just past a limit (string, array, object, nesting, body), or numbers JSON and YAML read differently. */
  function huge(): Json {
    switch (int(7)) {
      case 0: return 'x'.repeat(rnd() < 0.9 ? 65_537 + int(1000) : 1_100_000);
      case 1: return pick([1e308, -1e308, 2 ** 53 + 2, -(2 ** 60), 1e-300, 0.1, -0, 4294967297]);
      case 2: return Array.from({ length: 4097 + int(100) }, () => 0);
      case 3: return Object.fromEntries(Array.from({ length: 1025 + int(50) }, (_, i) => [`k${i}`, 0]));
      case 4: { let d: Json = 1; for (let i = 0, n = 20 + int(30); i < n; i++) d = [d]; return d; }
      case 5: return '\u{1F600}'.repeat(int(40_000));
      default: return pick(['', ' ', '0', '-1', 'null', '*', 'sealed:', 'ed25519:', '../../etc/passwd', '${HOME}']);
    }
  }

  function swapped(v: Json): Json {
    const options: Json[] = [null, true, false, 0, -1, 1.5, '', 'x', [], {}, [v], { v }];
    return pick(options.filter((o) => typeof o !== typeof v || Array.isArray(o) !== Array.isArray(v)));
  }

  function replaceSomewhere(v: Json, by: (old: Json) => Json): Json {
    const copy = structuredClone(v);
    const all = places(copy);
    if (all.length === 0) return by(copy);
    const [container, key] = pick(all);
    (container as Record<string | number, Json>)[key] = by((container as Record<string | number, Json>)[key]!);
    return copy;
  }

  return () => {
    const base = pick(seeds);
    const type = rnd() < 0.5 ? 'application/json' : 'application/yaml';
    const text = (v: Json) => Buffer.from(type === 'application/json' ? JSON.stringify(v) : stringify(v));
    switch (int(7)) {
      case 0: { // bit flips
        const body = text(base);
        const flips = 1 + int(4);
        for (let i = 0; i < flips; i++) body[int(body.length)]! ^= 1 << int(8);
        return { what: `${flips} bit flip(s)`, body, type, keepsSignatures: false };
      }
      case 1: { // truncation
        const body = text(base);
        const at = int(body.length);
        return { what: `truncated at ${at}`, body: body.subarray(0, at), type, keepsSignatures: false };
      }
      case 2: { // spliced syntax
        const body = text(base).toString();
        const at = int(body.length);
        const splice = pick(SPLICES);
        return { what: `${JSON.stringify(splice)} spliced at ${at}`, body: Buffer.from(body.slice(0, at) + splice + body.slice(at)), type, keepsSignatures: false };
      }
      case 3: // key shuffles: the same value, so a signed seed stays signed
      case 4:
        return { what: 'keys shuffled', body: text(shuffleKeys(base)), type, keepsSignatures: true };
      case 5:
        return { what: 'a value of another type', body: text(replaceSomewhere(base, swapped)), type, keepsSignatures: false };
      default:
        return { what: 'a huge value', body: text(replaceSomewhere(base, huge)), type, keepsSignatures: false };
    }
  };
}

const EXAMPLE = new URL('../../blueprints/examples/video-pipeline.yaml', import.meta.url);

/**
 * Seeds for one path name: the example (signed by nobody the node trusts: every mutation
 * of it is refused), versions 1 to 6 signed for the node, and a tombstone (version 7).
 */
export function fuzzSeeds(name: string, sign: (bp: Omit<Blueprint, 'owner' | 'node'>) => Blueprint): Json[] {
  const workloads = [
    { name: 'a', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'echo a'], env: { MODE: 'x' }, resources: { cpus: 0.01, memory: '4Mi' } },
    { name: 'b', kind: 'container', image: 'zone/busybox' },
  ] as Blueprint['workloads'];
  return [
    parse(readFileSync(EXAMPLE, 'utf8')) as Json,
    ...Array.from({ length: 6 }, (_, v) => sign({ name, version: v + 1, expires: '2099-01-01T00:00:00Z', workloads }) as unknown as Json),
    sign({ name, version: 7, delete: true }) as unknown as Json,
  ];
}
