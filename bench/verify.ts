// Verify throughput of signed blueprints with 1, 10 and 100 workloads: the project's
// verifyBlueprint (signatures through Node crypto / OpenSSL) against the same steps
// with tweetnacl's pure-JS verify, measured in one run (in interleaved slices). Two signers,
// threshold 2. The goal of issue 23: verifyBlueprint at >= 0.7x the signatures alone.
// Run: node --import tsx bench/verify.ts
import nacl from 'tweetnacl';
import { canonicalBytes, canonicalJson } from '../blueprints/canonical.ts';
import { generateSigningKeyPair, parsePublicKey } from '../lib/ed25519.ts';
import { validateBlueprint } from '../blueprints/parse.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { verifyBlueprint } from '../blueprints/verify.ts';
import { verifyEd25519 } from '../lib/ed25519.ts';

const WARM_UP_MS = 500;
/** Each way is measured in slices taken in turn, so that a machine whose load changes meanwhile weighs on all alike. */
const SLICE_MS = 100;
const ROUNDS = 20;
const alice = generateSigningKeyPair();
const bob = generateSigningKeyPair();
const policy = { signers: [{ key: alice.publicKey, weight: 1 }, { key: bob.publicKey, weight: 1, owners: [alice.publicKey] }], threshold: 2 };
const ctx = { policy, nodeId: 'node1', storedVersion: () => null, now: new Date() };

function blueprintWith(workloads: number): Blueprint {
  const bp = validateBlueprint({
    name: 'bench', version: 1, owner: alice.publicKey, node: 'node1',
    workloads: Array.from({ length: workloads }, (_, i) => ({
      name: `w${i}`, kind: i % 2 ? 'vm' : 'container', image: 'zone/busybox',
      command: ['sh', '-c', `while true; do echo ${i}; sleep 1; done`],
      env: { INDEX: String(i), MODE: 'bench' }, resources: { cpus: 0.5, memory: '64Mi' }, restart: 'always',
      health: { command: ['true'], interval: '5s' },
    })),
  });
  return signBlueprint(signBlueprint(bp, alice.secretKey), bob.secretKey);
}

/** The same checks as verifyBlueprint for this case, with tweetnacl doing the signature step. */
function verifyWithTweetnacl(input: unknown): void {
  const bp = validateBlueprint(input);
  const message = canonicalBytes(bp);
  for (const s of bp.signatures ?? []) {
    if (!nacl.sign.detached.verify(message, Buffer.from(s.sig, 'base64'), parsePublicKey(s.key))) throw new Error('bad signature');
  }
}

/**
 * Calls of `fn` within `ms` milliseconds of this process's CPU time, and the CPU time
 * they took: on a shared machine the wall clock counts the time others had the core.
 */
function slice(fn: () => void, ms: number): { calls: number; ms: number } {
  let calls = 0;
  const start = process.cpuUsage();
  let elapsed = 0;
  while (elapsed < ms) {
    fn();
    calls++;
    const used = process.cpuUsage(start);
    elapsed = (used.user + used.system) / 1000;
  }
  return { calls, ms: elapsed };
}

/** Calls per CPU second of each of `fns`, measured in interleaved slices after a warm-up (the JIT settles first). */
function perSecond(fns: (() => void)[]): number[] {
  for (const fn of fns) slice(fn, WARM_UP_MS);
  const totals = fns.map(() => ({ calls: 0, ms: 0 }));
  for (let r = 0; r < ROUNDS; r++) {
    fns.forEach((fn, i) => {
      const { calls, ms } = slice(fn, SLICE_MS);
      totals[i]!.calls += calls;
      totals[i]!.ms += ms;
    });
  }
  return totals.map((t) => (t.calls * 1000) / t.ms);
}

/** The signature step alone: both signatures over the canonical bytes. */
function signatureStep(signed: Blueprint, verify: (m: Uint8Array, s: Uint8Array, k: Uint8Array) => boolean): () => void {
  const message = canonicalBytes(signed);
  const sigs = (signed.signatures ?? []).map((s) => [Buffer.from(s.sig, 'base64'), parsePublicKey(s.key)] as const);
  return () => {
    for (const [sig, key] of sigs) if (!verify(message, sig, key)) throw new Error('bad signature');
  };
}

const col = (v: number | string, w: number) => (typeof v === 'number' ? v.toFixed(0) : v).padStart(w);
console.log('workloads  keys       bytes | verifyBlueprint bp/s: node-crypto  tweetnacl  ratio | signatures only /s: node-crypto  tweetnacl  ratio | verify / signatures (node-crypto)');
for (const workloads of [1, 10, 100]) {
  const written = blueprintWith(workloads);
  // As parsed from a file written by hand (keys in the author's order), and as `zone apply` sends it (RFC 8785 order).
  const ways: [string, Blueprint][] = [['written', JSON.parse(JSON.stringify(written)) as Blueprint], ['canonical', JSON.parse(canonicalJson(written)) as Blueprint]];
  for (const [order, signed] of ways) {
    // Each pair in slices of its own: interleaved with the tweetnacl path (which runs the
    // same parsing and canonical code in another way, and makes far more garbage),
    // verifyBlueprint measured about a quarter below its rate alone, the signatures less.
    const [node = 0, nodeSig = 0] = perSecond([() => verifyBlueprint(signed, ctx), signatureStep(signed, verifyEd25519)]);
    const [tweetnacl = 0, naclSig = 0] = perSecond([() => verifyWithTweetnacl(signed), signatureStep(signed, nacl.sign.detached.verify)]);
    console.log(`${col(workloads, 9)}  ${order.padEnd(9)}  ${col(canonicalBytes(signed).length, 6)} | ${col(node, 32)}  ${col(tweetnacl, 9)}  ${col(`${(node / tweetnacl).toFixed(1)}x`, 5)} |` +
      ` ${col(nodeSig, 30)}  ${col(naclSig, 9)}  ${col(`${(nodeSig / naclSig).toFixed(1)}x`, 5)} | ${col(`${(node / nodeSig).toFixed(2)}x`, 33)}`);
  }
}
