// The node under hostile input, measured in one run on loopback (fake driver: what is
// measured is the API's thread and its parse workers, not an engine):
// - /healthz latency p50/p99 on a quiet node, then while 4 clients send hostile bodies
//   (test/helpers/hostile-bodies.ts) in a loop: the ratio. The hostile clients run in a
//   process of their own (this file with --attack URL), so that what is measured is the
//   node's thread, not theirs;
// - accepted blueprints per second at 50 concurrent clients through the API, against
//   the same path in process (appliance.submit: verify, admit, store; no HTTP);
// - 100,000 mutated blueprints through the API (test/helpers/fuzz-submit.ts): no 5xx,
//   every answer the expected one.
// Run: node --import tsx bench/hostile.ts   (ZONE_FUZZ_CASES to change the fuzz count)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAppliance } from '../appliance/appliance.ts';
import { GIB } from '../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../appliance/config.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { FakeDriver } from '../drivers/fake/driver.ts';
import { buildServer } from '../api/server.ts';
import { fuzzSeeds } from '../test/helpers/blueprint-mutations.ts';
import { fuzzSubmits } from '../test/helpers/fuzz-submit.ts';
import { HOSTILE_BODIES } from '../test/helpers/hostile-bodies.ts';

const HEALTH_SAMPLES = 2000;
const HOSTILE_CLIENTS = 4;
const SUBMIT_CLIENTS = 50;
const SUBMITS_PER_CLIENT = 20;
const FUZZ_CASES = Number(process.env.ZONE_FUZZ_CASES ?? 100_000);

/** The hostile clients' process: sends until SIGTERM, then prints how many and the statuses. */
async function attack(url: string): Promise<void> {
  let stop = false;
  let sent = 0;
  const statuses = new Set<number>();
  process.once('SIGTERM', () => { stop = true; });
  await Promise.all(Array.from({ length: HOSTILE_CLIENTS }, async (_, c) => {
    for (let i = c; !stop; i++) {
      const hostile = HOSTILE_BODIES[i % HOSTILE_BODIES.length]!;
      const res = await fetch(`${url}/v1/blueprints/x`, { method: 'PUT', headers: { 'content-type': hostile.type }, body: hostile.body });
      await res.arrayBuffer();
      statuses.add(res.status);
      if (sent++ === 0) process.stdout.write('attacking\n');
    }
  }));
  process.stdout.write(`${JSON.stringify({ sent, statuses: [...statuses] })}\n`);
}

if (process.argv[2] === '--attack') {
  await attack(process.argv[3]!);
  process.exit(0);
}

const dirs: string[] = [];
const operatorKey = { current: null as null | ReturnType<typeof readSigningKey> };

/** An appliance on a fresh store, trusting the same operator key. */
async function startAppliance() {
  const dir = mkdtempSync(join(tmpdir(), 'zone-bench-hostile-'));
  dirs.push(dir);
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  operatorKey.current ??= readSigningKey(createdOperatorKey!);
  const appliance = await createAppliance({
    config, trustPolicy: { ...policy, signers: [{ key: operatorKey.current.publicKey, weight: 1 }], threshold: 1 },
    drivers: () => [new FakeDriver()], logger: pino({ level: 'silent' }),
    hostCapacity: { cpus: 1024, memoryBytes: 4096 * GIB, diskBytes: 100_000 * GIB },
  });
  appliance.start();
  return appliance;
}

const appliance = await startAppliance();
const inProcessAppliance = await startAppliance();
const operator = operatorKey.current!;
const api = await buildServer(appliance, { rateLimit: false });
const url = await api.listen({ host: '127.0.0.1', port: 0 });
const sign = (bp: Omit<Blueprint, 'owner' | 'node'>, node = appliance.identity.id) =>
  signBlueprint({ ...bp, owner: operator.publicKey, node } as Blueprint, operator.secretKey);
const blueprint = (name: string, version: number, node?: string) => sign({
  name, version,
  workloads: Array.from({ length: 5 }, (_, i) => ({ name: `w${i}`, kind: 'container', image: 'zone/busybox', resources: { cpus: 0.01, memory: '4Mi' } })) as Blueprint['workloads'],
}, node);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function healthLatencies(): Promise<{ p50: number; p99: number }> {
  const ms: number[] = [];
  for (let i = 0; i < HEALTH_SAMPLES; i++) {
    const t0 = performance.now();
    await (await fetch(`${url}/healthz`)).arrayBuffer();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 0.5), p99: percentile(ms, 0.99) };
}

async function acceptedPerSecond(submit: (bp: Blueprint) => Promise<void>, node: string): Promise<number> {
  const signed = Array.from({ length: SUBMIT_CLIENTS }, (_, c) => Array.from({ length: SUBMITS_PER_CLIENT }, (_, v) => blueprint(`load-${c}`, v + 1, node)));
  const start = performance.now();
  await Promise.all(signed.map(async (versions) => { for (const bp of versions) await submit(bp); }));
  return (SUBMIT_CLIENTS * SUBMITS_PER_CLIENT) / ((performance.now() - start) / 1000);
}

try {
  await (await fetch(`${url}/v1/blueprints/warm`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(blueprint('warm', 1)) })).arrayBuffer();
  await healthLatencies(); // warm up
  const quiet = await healthLatencies();
  const attacker = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--attack', url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  attacker.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
  while (!output.includes('attacking')) await once(attacker.stdout, 'data');
  const attacked = await healthLatencies();
  attacker.kill('SIGTERM');
  await once(attacker, 'exit');
  const { sent: hostileSent, statuses } = JSON.parse(output.split('\n')[1]!) as { sent: number; statuses: number[] };
  console.log(`/healthz, ${HEALTH_SAMPLES} sequential: quiet p50 ${quiet.p50.toFixed(2)} ms p99 ${quiet.p99.toFixed(2)} ms; with ${HOSTILE_CLIENTS} clients sending hostile bodies (${hostileSent} sent, statuses ${statuses.join(',')}): p50 ${attacked.p50.toFixed(2)} ms p99 ${attacked.p99.toFixed(2)} ms; ratio p50 ${(attacked.p50 / quiet.p50).toFixed(2)}, p99 ${(attacked.p99 / quiet.p99).toFixed(2)}`);

  const viaApi = await acceptedPerSecond(async (bp) => {
    const res = await fetch(`${url}/v1/blueprints/${bp.name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
    if (res.status !== 202) throw new Error(`status ${res.status}: ${await res.text()}`);
  }, appliance.identity.id);
  // The same blueprints on a second node with an equally empty store, no HTTP.
  const inProcess = await acceptedPerSecond(async (bp) => { await inProcessAppliance.submit(bp); }, inProcessAppliance.identity.id);
  console.log(`accepted blueprints (5 workloads), ${SUBMIT_CLIENTS} concurrent clients: API ${viaApi.toFixed(0)}/s, appliance.submit in process ${inProcess.toFixed(0)}/s, ratio ${(viaApi / inProcess).toFixed(2)}`);

  const fuzz = await fuzzSubmits({
    url, node: appliance.verificationContext(), cases: FUZZ_CASES, seed: 1, clients: 8, prefix: 'fuzz',
    seedsFor: (name) => fuzzSeeds(name, sign),
  });
  const fivexx = [...fuzz.statuses].filter(([s]) => s >= 500).reduce((sum, [, n]) => sum + n, 0);
  console.log(`fuzz: ${fuzz.sent} mutated blueprints in ${fuzz.seconds.toFixed(0)} s (${(fuzz.sent / fuzz.seconds).toFixed(0)}/s); statuses ${JSON.stringify(Object.fromEntries(fuzz.statuses))}; 5xx ${fivexx}; answers other than expected ${fuzz.wrongCount}`);
  for (const w of fuzz.wrong) console.log(`  unexpected: ${w}`);
  if (fivexx > 0 || fuzz.wrongCount > 0) process.exitCode = 1;
} finally {
  await api.close();
  await appliance.close();
  await inProcessAppliance.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
