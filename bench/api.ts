// What the node API costs on top of the appliance, measured in one run on loopback:
// - reads: GET /v1/blueprints/:name through the API (fastify: routing, rate limit,
//   schema serialization, metrics) against a bare node:http server answering the same
//   JSON from the same appliance;
// - submits: PUT /v1/blueprints/:name against calling appliance.submit() in process.
// Run: node --import tsx bench/api.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
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

const READS = 4000;
const CONCURRENCY = 16;
const SUBMITS = 200;

const dir = mkdtempSync(join(tmpdir(), 'zone-bench-api-'));
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, drivers: () => [new FakeDriver()], logger: pino({ level: 'silent' }),
  hostCapacity: { cpus: 64, memoryBytes: 256 * GIB, diskBytes: 1000 * GIB },
});
appliance.start();
const sign = (name: string, version: number) => signBlueprint({
  name, version, owner: operator.publicKey, node: appliance.identity.id,
  workloads: Array.from({ length: 5 }, (_, i) => ({ name: `w${i}`, kind: 'container', image: 'zone/busybox', resources: { cpus: 0.01, memory: '4Mi' } })),
} as Blueprint, operator.secretKey);
await appliance.submit(sign('read', 1));

const api = await buildServer(appliance, { rateLimit: false });
const apiUrl = await api.listen({ host: '127.0.0.1', port: 0 });
const bare = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(appliance.getBlueprint('read'))));
await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;

async function readsPerSecond(url: string): Promise<number> {
  let left = READS;
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (left-- > 0) {
      const res = await fetch(`${url}/v1/blueprints/read`);
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      await res.arrayBuffer();
    }
  }));
  return READS / ((performance.now() - start) / 1000);
}

async function msPerSubmit(submit: (bp: Blueprint) => Promise<unknown>, name: string): Promise<number> {
  const start = performance.now();
  for (let v = 1; v <= SUBMITS; v++) await submit(sign(name, v));
  return (performance.now() - start) / SUBMITS;
}

try {
  await readsPerSecond(bareUrl); // warm up both paths
  await readsPerSecond(apiUrl);
  const bareReads = await readsPerSecond(bareUrl);
  const apiReads = await readsPerSecond(apiUrl);
  const direct = await msPerSubmit((bp) => appliance.submit(bp), 'direct');
  const viaApi = await msPerSubmit(async (bp) => {
    const res = await fetch(`${apiUrl}/v1/blueprints/${bp.name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bp) });
    if (res.status !== 202) throw new Error(`status ${res.status}: ${await res.text()}`);
  }, 'viaapi');
  console.log(`reads  GET /v1/blueprints/:name, ${CONCURRENCY} concurrent: API ${apiReads.toFixed(0)}/s, bare node:http ${bareReads.toFixed(0)}/s, ratio ${(apiReads / bareReads).toFixed(2)}`);
  console.log(`submit PUT /v1/blueprints/:name (5 workloads), sequential: API ${viaApi.toFixed(2)} ms, appliance.submit ${direct.toFixed(2)} ms, ratio ${(viaApi / direct).toFixed(2)}`);
} finally {
  await api.close();
  bare.close();
  await appliance.close();
  rmSync(dir, { recursive: true, force: true });
}
