// A real appliance (fake driver, temporary data dir) behind a real API server on an
// ephemeral loopback port, with every log line captured so tests can scan them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { createLogger } from '../../appliance/logger.ts';
import { readSigningKey, type SigningKeyPair } from '../../blueprints/keys.ts';
import type { Blueprint, Workload } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { FakeDriver } from '../../drivers/fake/driver.ts';
import { buildServer, type ServerOptions } from '../../api/server.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';

export interface TestNode {
  appliance: ZoneAppliance;
  driver: FakeDriver;
  server: FastifyInstance;
  url: string;
  dataDir: string;
  operator: SigningKeyPair;
  /** Every log line written so far (appliance and API). */
  log(): string;
  /** A blueprint for this node, owned and signed by the operator. */
  sign(bp: Omit<Blueprint, 'owner' | 'node'> & Partial<Blueprint>, key?: SigningKeyPair): Blueprint;
}

export const box = (name: string, extra: Partial<Workload> = {}): Workload =>
  ({ name, kind: 'container', image: 'zone/busybox', ...extra }) as Workload;

/** `pseudokernel`: run one (a nats-server on a free port) for the grid routes. */
export async function startNode(t: Test, options: ServerOptions = {}, node: { pseudokernel?: boolean } = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zone-api-'));
  const nats = node.pseudokernel ? { ZONE_NATS_LISTEN: `127.0.0.1:${(await freeLoopbackPorts(1))[0]}` } : {};
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dataDir, ...nats }, cwd: dataDir });
  const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey!);
  let log = '';
  const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });
  const driver = new FakeDriver();
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger, drivers: () => [driver],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    ...(node.pseudokernel ? { pseudokernel: {} } : {}),
  });
  appliance.start();
  const built: { server?: FastifyInstance } = {};
  // Registered before the server is built: a server that fails to start leaves nothing behind either.
  t.teardown(async () => {
    await built.server?.close();
    await appliance.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const server = built.server = await buildServer(appliance, { logger, ...options });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    appliance, driver, server, url, dataDir, operator,
    log: () => log,
    sign: (bp, key = operator) => signBlueprint({ owner: operator.publicKey, node: appliance.identity.id, ...bp } as Blueprint, key.secretKey),
  };
}

/** fetch with a JSON body and a parsed JSON answer. */
export async function call(url: string, init: { method?: string; body?: unknown; text?: string; type?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { ...(init.body !== undefined || init.text !== undefined ? { 'content-type': init.type ?? 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : init.text !== undefined ? { body: init.text } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: json as Record<string, unknown> };
}
