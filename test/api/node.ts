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
import { loadNodeConfig, loadOrCreateTrustPolicy, type NodeConfig, type NodeLimits } from '../../appliance/config.ts';
import { createLogger } from '../../appliance/logger.ts';
import { readProtection } from '../../appliance/read-protection.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { type SigningKeyPair } from '../../lib/ed25519.ts';
import type { TrustedSigner } from '../../blueprints/policy.ts';
import type { Blueprint, Workload } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { FakeDriver } from '../../drivers/fake/driver.ts';
import { buildServer, type ServerOptions } from '../../api/server.ts';
import { makeOwnerToken } from '../../lib/tokens.ts';
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

/**
 * `pseudokernel`: run one (a nats-server on a free port) for the grid routes; `tokens`: the appliance's token options.
 * `operatorOwners`: the owners the operator key may act for (trust policy `owners`); by default its own key only.
 * `exposed`: the read protection a node listening beyond loopback gets by default (it still listens on loopback here).
 * `limits`: some of the config's limits.* (the rest default); `images`: the config's images.*.
 */
export async function startNode(t: Test, options: ServerOptions = {}, node: { pseudokernel?: boolean; tokens?: { replayCapacity?: number; clock?: () => number }; operatorOwners?: TrustedSigner['owners']; exposed?: boolean; limits?: Partial<NodeLimits>; images?: NodeConfig['images'] } = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zone-api-'));
  const nats = node.pseudokernel ? { ZONE_NATS_LISTEN: `127.0.0.1:${(await freeLoopbackPorts(1))[0]}` } : {};
  const loaded = loadNodeConfig({ env: { ZONE_DATA_DIR: dataDir, ...nats }, cwd: dataDir });
  const config = { ...loaded, limits: { ...loaded.limits, ...node.limits }, ...(node.images ? { images: node.images } : {}) };
  const { policy: created, createdOperatorKey } = loadOrCreateTrustPolicy(config);
  const operator = readSigningKey(createdOperatorKey!);
  const owners = node.operatorOwners;
  const policy = owners ? { ...created, signers: created.signers.map((s) => ({ ...s, owners })) } : created;
  let log = '';
  const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });
  const driver = new FakeDriver();
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger, drivers: () => [driver],
    hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    ...(node.pseudokernel ? { pseudokernel: {} } : {}),
    ...(node.tokens ? { tokens: node.tokens } : {}),
  });
  appliance.start();
  const exposed = node.exposed ? readProtection({ listen: [{ host: '0.0.0.0', port: 7700 }], readTokens: config.readTokens }, policy).options : null;
  const built: { server?: FastifyInstance } = {};
  // Registered before the server is built: a server that fails to start leaves nothing behind either.
  t.teardown(async () => {
    await built.server?.close();
    await appliance.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const server = built.server = await buildServer(appliance, { logger, ...(exposed ? { readToken: exposed } : {}), ...options });
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

/** The Authorization header of a fresh owner token of `key` for one call (a node accepts a token once), made for node `aud`. */
export function ownerToken(key: SigningKeyPair, aud: string, method: string, url: string): { authorization: string } {
  return { authorization: makeOwnerToken(key, { aud, method, path: new URL(url).pathname }) };
}

/** `call` as `key`'s owner, with a fresh token for each call, made for node `aud`. */
export function ownerCall(key: SigningKeyPair, aud: string) {
  return (url: string, init: Parameters<typeof call>[1] = {}) => call(url, { ...init, headers: { ...ownerToken(key, aud, init.method ?? 'GET', url), ...init.headers } });
}
