// Verify throughput of signed blueprints with 1, 10 and 100 workloads: the project's
// verifyBlueprint (signatures through Node crypto / OpenSSL) against the same steps
// with tweetnacl's pure-JS verify, measured in one run. Two signers, threshold 2.
// Run: node --import tsx bench/verify.ts
import nacl from 'tweetnacl';
import { canonicalBytes } from '../blueprints/canonical.ts';
import { generateSigningKeyPair, parsePublicKey } from '../lib/ed25519.ts';
import { validateBlueprint } from '../blueprints/parse.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { verifyBlueprint } from '../blueprints/verify.ts';
import { verifyEd25519 } from '../lib/ed25519.ts';

const WARM_UP_MS = 500;
const MEASURE_MS = 2000;
const alice = generateSigningKeyPair();
const bob = generateSigningKeyPair();
const policy = { signers: [{ key: alice.publicKey, weight: 1 }, { key: bob.publicKey, weight: 1 }], threshold: 2 };
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

/** Calls per second of `fn` over `ms` milliseconds. */
function rate(fn: () => void, ms: number): number {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < ms) {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return (n * 1000) / elapsed;
}

function perSecond(fn: () => void): number {
  rate(fn, WARM_UP_MS); // let the JIT settle first
  return rate(fn, MEASURE_MS);
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
console.log('workloads   bytes | verifyBlueprint bp/s: node-crypto  tweetnacl  ratio | signatures only /s: node-crypto  tweetnacl  ratio');
for (const workloads of [1, 10, 100]) {
  const signed = JSON.parse(JSON.stringify(blueprintWith(workloads))) as Blueprint;
  const node = perSecond(() => verifyBlueprint(signed, ctx));
  const tweetnacl = perSecond(() => verifyWithTweetnacl(signed));
  const nodeSig = perSecond(signatureStep(signed, verifyEd25519));
  const naclSig = perSecond(signatureStep(signed, nacl.sign.detached.verify));
  console.log(`${col(workloads, 9)}  ${col(canonicalBytes(signed).length, 6)} | ${col(node, 32)}  ${col(tweetnacl, 9)}  ${col(`${(node / tweetnacl).toFixed(1)}x`, 5)} |` +
    ` ${col(nodeSig, 30)}  ${col(naclSig, 9)}  ${col(`${(nodeSig / naclSig).toFixed(1)}x`, 5)}`);
}
