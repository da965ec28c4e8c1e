// The node configuration: embedded defaults, overridden by an optional JSON file
// (`$ZONE_CONFIG`, or config.json in the data directory) and by the environment
// ($ZONE_DATA_DIR, $ZONE_LISTEN: host:port[,host:port...], $ZONE_NATS_LISTEN: host:port). The file is checked
// against a TypeBox schema and errors name the field.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { readSigningKey, writeSigningKey } from '../blueprints/keys.ts';
import { generateSigningKeyPair } from '../lib/ed25519.ts';
import { PUBLIC_KEY_PATTERN } from '../lib/ed25519.ts';
import { loadTrustPolicy, type TrustPolicy } from '../blueprints/policy.ts';
import { ZoneError } from '../lib/errors.ts';
import { DURATION_PATTERN, parseDuration } from '../blueprints/units.ts';
import { DEFAULT_OWNER_QUOTA, OWNER_KV_BUCKETS, ownerReservation } from './pseudokernel/nats/owner-quota.ts';
import type { NatsClusterOptions } from './pseudokernel/nats/server-config.ts';
import { OPENABLE_SERVICES, type OpenableService } from './firewall/rules.ts';
import { parseRegistries, type RegistryConfig } from './images/registries.ts';

const Factor = Type.Number({ minimum: 0.1, maximum: 100 });
const LISTEN_PATTERN = '^([^:,]+):([0-9]{1,5})$';
const MIB = 2 ** 20;
const StreamLimitFile = (what: string) => Type.Object({
  perClient: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: `${what} open at once from one client address` })),
  total: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: `${what} open at once in all` })),
}, { additionalProperties: false });
const ListenAddress = Type.String({ pattern: LISTEN_PATTERN, description: 'host:port' });

export const NodeConfigFile = Type.Object({
  dataDir: Type.Optional(Type.String({ minLength: 1, description: 'where the node keeps its keys, store and driver files' })),
  listen: Type.Optional(Type.Union([ListenAddress, Type.Array(ListenAddress, { minItems: 1, maxItems: 8 })], {
    description: 'host:port of the API, or a list of them (e.g. loopback and the overlay address)',
  })),
  readTokens: Type.Optional(Type.Object({
    keys: Type.Optional(Type.Array(Type.String({ pattern: PUBLIC_KEY_PATTERN }), { minItems: 1, maxItems: 64, description: 'keys whose signed read tokens are accepted (default: the trust policy\'s signers)' })),
    public: Type.Optional(Type.Boolean({ description: 'true: reads are open on every address, even beyond loopback' })),
    maxTtlSeconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 60, description: 'longest lifetime (exp - iat) of a token; at most, and by default, 60 s' })),
  }, {
    additionalProperties: false,
    description: 'read endpoints need a signed, short-lived token (Authorization: Zone ...); on by default when the API listens beyond loopback',
  })),
  trustPolicy: Type.Optional(Type.String({ minLength: 1, description: 'trust policy file (default: trust-policy.json in the data directory)' })),
  policy: Type.Optional(Type.Object({
    privileged: Type.Optional(Type.Boolean()),
    hostNetwork: Type.Optional(Type.Boolean()),
    hostMounts: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { description: 'host paths workloads may mount' })),
    devices: Type.Optional(Type.Array(Type.String({ pattern: '^/dev/' }))),
    capabilities: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z_]{2,32}$' }))),
    vmImages: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { maxItems: 64, description: 'host path prefixes VMs may boot disk images from (regular files only, symlinks resolved)' })),
    terminals: Type.Optional(Type.Boolean({ description: 'owners may open a terminal (a shell in a container, a VM\'s serial console) into their own running workloads (default true)' })),
  }, { additionalProperties: false })),
  overcommit: Type.Optional(Type.Object({ cpu: Type.Optional(Factor), memory: Type.Optional(Factor), disk: Type.Optional(Factor) }, { additionalProperties: false })),
  reconcile: Type.Optional(Type.Object({
    resyncSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  }, { additionalProperties: false })),
  eventsLimit: Type.Optional(Type.Integer({ minimum: 100, maximum: 10_000_000, description: 'events kept in the store' })),
  nats: Type.Optional(Type.Object({
    listen: Type.Optional(Type.String({ pattern: LISTEN_PATTERN, description: 'host:port where the local nats-server takes clients (default 127.0.0.1:4222)' })),
    cluster: Type.Optional(Type.Object({
      name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'the same on every node of the grid' }),
      listen: Type.String({ pattern: LISTEN_PATTERN, description: 'host:port for the other nodes\' servers (e.g. the overlay address)' }),
      routes: Type.Array(Type.String({ minLength: 1 }), { maxItems: 64, description: 'the other servers\' cluster addresses, host:port' }),
      routeSecret: Type.String({ minLength: 1, description: 'file (0600) holding the grid\'s route password, the same on every node; relative to the data directory' }),
      tls: Type.Optional(Type.Object({
        ca: Type.String({ minLength: 1, description: 'the grid\'s CA certificate (PEM): routes whose certificate it did not sign are refused' }),
        cert: Type.String({ minLength: 1, description: 'this node\'s route certificate (PEM), signed by the CA, for its cluster address' }),
        key: Type.String({ minLength: 1, description: 'its private key (PEM, 0600)' }),
      }, { additionalProperties: false, description: 'mutual TLS on every route (required unless plainRoutes)' })),
      plainRoutes: Type.Optional(Type.Boolean({ description: 'benchmarks only: routes without TLS (still with the route password)' })),
    }, { additionalProperties: false })),
  }, { additionalProperties: false, description: 'the pseudokernel\'s nats-server' })),
  firewall: Type.Optional(Type.Object({
    open: Type.Optional(Type.Array(Type.Union(OPENABLE_SERVICES.map((s) => Type.Literal(s))), {
      uniqueItems: true, description: 'the node\'s services its workloads may reach: "api", "nats" (clients); none by default',
    })),
  }, { additionalProperties: false, description: 'the rules that keep workloads (containers, VMs) from the node\'s own ports' })),
  limits: Type.Optional(Type.Object({
    eventStreams: Type.Optional(StreamLimitFile('GET /v1/events streams')),
    logFollows: Type.Optional(StreamLimitFile('GET .../logs?follow=1 streams (each holds an engine connection)')),
    jetstreamFileBytes: Type.Optional(Type.Integer({ minimum: 64 * MIB, description: "nats-server's max_file_store: all JetStream files of this node" })),
    jetstreamMemoryBytes: Type.Optional(Type.Integer({ minimum: 16 * MIB, description: "nats-server's max_memory_store" })),
    ownerBytes: Type.Optional(Type.Integer({ minimum: MIB, description: "max_bytes of each owner's file store (/zone/fs contents)" })),
    ownerKvBytes: Type.Optional(Type.Integer({ minimum: 64 * 1024, description: "max_bytes of each of an owner's KV buckets (namespace, readers, process table)" })),
    gridFileBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 30, description: 'largest file one PUT /v1/grid/fs takes' })),
    owners: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'owners whose shared storage this node holds' })),
    zoneOpenFiles: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_000_000, description: 'open files per /zone mount' })),
    imageStoreBytes: Type.Optional(Type.Integer({ minimum: 16 * MIB, description: "max_bytes of the grid's image store (every owner's pushed images)" })),
    ownerImageBytes: Type.Optional(Type.Integer({ minimum: MIB, description: 'bytes of images one owner may store in the grid' })),
  }, { additionalProperties: false, description: 'bounds of streams, storage and open files; see "Limits" in the README' })),
  volumes: Type.Optional(Type.Object({
    retention: Type.Optional(Type.String({ pattern: DURATION_PATTERN, description: 'how long a volume no blueprint lists any more keeps its data before it is deleted (default 24h); listed again within it, the data returns' })),
  }, { additionalProperties: false, description: 'the blueprints\' volumes on this node' })),
  images: Type.Optional(Type.Object({
    gcGraceSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86400, description: 'how long a pushed image no blueprint pins stays in the grid\'s image store, and an image a node loaded from the grid stays on the node once none of its blueprints pins it (default 1 day)' })),
  }, { additionalProperties: false, description: 'the grid\'s image store' })),
  registries: Type.Optional(Type.Array(Type.Object({
    url: Type.String({ minLength: 1, maxLength: 512, description: 'host[:port] of the registry, optionally with a namespace below it (registry.example:5000/team)' }),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 12_000, description: 'sealed:v2 to this node (zone seal --owner NODE_SIGNING_KEY --blueprint \'*\' --field registries/HOST/password)' })),
  }, { additionalProperties: false }), {
    maxItems: 16, description: 'registries tried in order for images neither on the node nor in the grid\'s image store',
  })),
  logLevel: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)))),
}, { additionalProperties: false, $id: 'https://zone.dev/schemas/node-config-v1.json', title: 'Zone node configuration' });

export type NodeConfigFile = Static<typeof NodeConfigFile>;

export interface NodeConfig {
  dataDir: string;
  /** The API's addresses; the first is the one printed and used by local clients. */
  listen: { host: string; port: number }[];
  /** What the config says of read tokens; null: nothing (see appliance/read-protection.ts for the default). */
  readTokens: { public: boolean; keys: string[] | null; maxTtlSeconds?: number } | null;
  trustPolicyPath: string;
  policy: { privileged: boolean; hostNetwork: boolean; hostMounts: string[]; devices: string[]; capabilities: string[]; vmImages: string[]; terminals: boolean };
  overcommit: { cpu: number; memory: number; disk: number };
  reconcile: { resyncMs: number; concurrency: number };
  eventsLimit: number;
  /** The pseudokernel's local nats-server (its clients, and its cluster when the grid has one). */
  nats: { host: string; port: number; cluster: NatsClusterOptions | null };
  /** The node's services workloads may reach; the others' ports are closed to them. */
  firewall: { open: OpenableService[] };
  limits: NodeLimits;
  /** How long a released volume keeps its data. */
  volumes: { retentionMs: number };
  /** The grid's image store: how long an image no blueprint pins stays. */
  images: { gcGraceMs: number };
  /** Where images neither on the node nor in the grid are pulled from, in order. */
  registries: RegistryConfig[];
  logLevel: string;
}

export interface StreamLimit {
  perClient: number;
  total: number;
}

/** What the node holds at most; the README's "Limits" table lists each with its status. */
export interface NodeLimits {
  eventStreams: StreamLimit;
  logFollows: StreamLimit;
  jetstreamFileBytes: number;
  jetstreamMemoryBytes: number;
  ownerBytes: number;
  ownerKvBytes: number;
  gridFileBytes: number;
  owners: number;
  zoneOpenFiles: number;
  imageStoreBytes: number;
  ownerImageBytes: number;
}

export const DEFAULT_LIMITS: NodeLimits = {
  eventStreams: { perClient: 8, total: 256 },
  logFollows: { perClient: 4, total: 64 },
  jetstreamFileBytes: 8 * 2 ** 30,
  jetstreamMemoryBytes: 256 * MIB,
  ...DEFAULT_OWNER_QUOTA,
  gridFileBytes: 64 * MIB,
  // Every owner's buckets reserve their max_bytes from max_file_store: 24 x 304 MiB fit 8 GiB.
  owners: 24,
  zoneOpenFiles: 1024,
  // What the owners' buckets leave of the 8 GiB: 8192 - 24 x 304 MiB.
  imageStoreBytes: 768 * MIB,
  ownerImageBytes: 512 * MIB,
};

export const DEFAULT_LISTEN = '127.0.0.1:7700';
export const DEFAULT_VOLUME_RETENTION = '24h';
const DEFAULT_NATS_LISTEN = '127.0.0.1:4222';
export const TRUST_POLICY_FILE = 'trust-policy.json';
export const OPERATOR_KEY_FILE = 'operator.key';
/**
 * Searchable but not listable by others: qemu runs as its own user and must reach the
 * VM files below it. Everything secret in it is a 0600 file.
 */
export const DATA_DIR_MODE = 0o711;

function readConfigFile(path: string): NodeConfigFile {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ZoneError('INVALID', `${path}: ${code ? `cannot read (${code})` : `not JSON (${(err as Error).message})`}`);
  }
  const [error] = Value.Errors(NodeConfigFile, value);
  if (error) throw new ZoneError('INVALID', `${path}: ${error.path || '/'}: ${error.message.toLowerCase()}`, error.path || '/');
  return value as NodeConfigFile;
}

function parseAddress(value: string, source: string, field: string): { host: string; port: number } {
  const m = new RegExp(LISTEN_PATTERN).exec(value);
  const port = Number(m?.[2]);
  if (!m?.[1] || port > 65535) throw new ZoneError('INVALID', `${source}: "${value}" is not host:port (e.g. ${DEFAULT_LISTEN})`, field);
  return { host: m[1], port };
}

function parseListen(values: string[], source: string): NodeConfig['listen'] {
  return values.map((value) => parseAddress(value, source, '/listen'));
}

/** The node configuration for this process (`env` and `cwd` are arguments so tests can set them). */
export function loadNodeConfig(options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): NodeConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const envDataDir = env.ZONE_DATA_DIR ? resolve(cwd, env.ZONE_DATA_DIR) : undefined;
  const filePath = env.ZONE_CONFIG ? resolve(cwd, env.ZONE_CONFIG) : join(envDataDir ?? resolve(cwd, '.zone/node'), 'config.json');
  const file = env.ZONE_CONFIG || existsSync(filePath) ? readConfigFile(filePath) : {};
  const dataDir = envDataDir ?? resolve(cwd, file.dataDir ?? '.zone/node');
  const trustPolicy = file.trustPolicy ?? TRUST_POLICY_FILE;
  return {
    dataDir,
    listen: env.ZONE_LISTEN ? parseListen(env.ZONE_LISTEN.split(','), '$ZONE_LISTEN') : parseListen([file.listen ?? DEFAULT_LISTEN].flat(), filePath),
    readTokens: readTokensOf(file.readTokens, filePath),
    trustPolicyPath: isAbsolute(trustPolicy) ? trustPolicy : join(dataDir, trustPolicy),
    policy: {
      privileged: file.policy?.privileged ?? false,
      hostNetwork: file.policy?.hostNetwork ?? false,
      hostMounts: file.policy?.hostMounts ?? [],
      devices: file.policy?.devices ?? [],
      capabilities: file.policy?.capabilities ?? [],
      vmImages: file.policy?.vmImages ?? [],
      terminals: file.policy?.terminals ?? true,
    },
    overcommit: { cpu: file.overcommit?.cpu ?? 4, memory: file.overcommit?.memory ?? 1, disk: file.overcommit?.disk ?? 1 },
    reconcile: { resyncMs: (file.reconcile?.resyncSeconds ?? 30) * 1000, concurrency: file.reconcile?.concurrency ?? 8 },
    eventsLimit: file.eventsLimit ?? 100_000,
    nats: natsOf(file.nats, filePath, env.ZONE_NATS_LISTEN, dataDir),
    firewall: { open: file.firewall?.open ?? [] },
    limits: limitsOf(file.limits, filePath),
    volumes: { retentionMs: parseDuration(file.volumes?.retention ?? DEFAULT_VOLUME_RETENTION) },
    images: { gcGraceMs: (file.images?.gcGraceSeconds ?? 86_400) * 1000 },
    registries: parseRegistries(file.registries ?? [], filePath),
    logLevel: env.ZONE_LOG_LEVEL ?? file.logLevel ?? 'info',
  };
}

function readTokensOf(tokens: NodeConfigFile['readTokens'], filePath: string): NodeConfig['readTokens'] {
  if (!tokens) return null;
  if (tokens.public && tokens.keys) throw new ZoneError('INVALID', `${filePath}: readTokens: public reads take no keys (drop "keys" or "public")`, '/readTokens/public');
  return { public: tokens.public ?? false, keys: tokens.keys ?? null, ...(tokens.maxTtlSeconds ? { maxTtlSeconds: tokens.maxTtlSeconds } : {}) };
}

function limitsOf(file: NodeConfigFile['limits'] = {}, filePath: string): NodeLimits {
  const d = DEFAULT_LIMITS;
  const limits: NodeLimits = {
    eventStreams: { ...d.eventStreams, ...file.eventStreams },
    logFollows: { ...d.logFollows, ...file.logFollows },
    jetstreamFileBytes: file.jetstreamFileBytes ?? d.jetstreamFileBytes,
    jetstreamMemoryBytes: file.jetstreamMemoryBytes ?? d.jetstreamMemoryBytes,
    ownerBytes: file.ownerBytes ?? d.ownerBytes,
    ownerKvBytes: file.ownerKvBytes ?? d.ownerKvBytes,
    gridFileBytes: file.gridFileBytes ?? d.gridFileBytes,
    owners: file.owners ?? d.owners,
    zoneOpenFiles: file.zoneOpenFiles ?? d.zoneOpenFiles,
    imageStoreBytes: file.imageStoreBytes ?? d.imageStoreBytes,
    ownerImageBytes: file.ownerImageBytes ?? d.ownerImageBytes,
  };
  const reserved = limits.owners * ownerReservation(limits) + limits.imageStoreBytes;
  if (reserved > limits.jetstreamFileBytes) {
    throw new ZoneError('INVALID', `${filePath}: limits.owners x (limits.ownerBytes + ${OWNER_KV_BUCKETS} x limits.ownerKvBytes) + limits.imageStoreBytes is ${reserved} bytes, more than limits.jetstreamFileBytes (${limits.jetstreamFileBytes}): every owner's buckets and the image store reserve their size there`, '/limits/owners');
  }
  return limits;
}

/**
 * `envListen` ($ZONE_NATS_LISTEN) wins over the file's nats.listen; errors name where the value came from.
 * The cluster's files are relative to the data directory.
 */
function natsOf(nats: NodeConfigFile['nats'], filePath: string, envListen: string | undefined, dataDir: string): NodeConfig['nats'] {
  const client = envListen
    ? parseAddress(envListen, '$ZONE_NATS_LISTEN', '/nats/listen')
    : parseAddress(nats?.listen ?? DEFAULT_NATS_LISTEN, `${filePath}: nats.listen`, '/nats/listen');
  const cluster = nats?.cluster;
  if (!cluster) return { ...client, cluster: null };
  const listen = parseAddress(cluster.listen, `${filePath}: nats.cluster.listen`, '/nats/cluster/listen');
  if (!cluster.tls && !cluster.plainRoutes) throw new ZoneError('INVALID', `${filePath}: nats.cluster.tls: routes need mutual TLS: give {ca, cert, key} (or plainRoutes: true, for benchmarks only)`, '/nats/cluster/tls');
  if (cluster.tls && cluster.plainRoutes) throw new ZoneError('INVALID', `${filePath}: nats.cluster.plainRoutes: give either tls or plainRoutes, not both`, '/nats/cluster/plainRoutes');
  const path = (p: string) => resolve(dataDir, p);
  const tls = cluster.tls ? { caFile: path(cluster.tls.ca), certFile: path(cluster.tls.cert), keyFile: path(cluster.tls.key) } : null;
  return { ...client, cluster: { name: cluster.name, host: listen.host, port: listen.port, routes: cluster.routes, tls, routeSecretFile: path(cluster.routeSecret) } };
}

/**
 * The trust policy; on first start (no policy file) creates an operator key in the
 * data directory and a policy that trusts it alone. `created` says where the key is.
 */
export function loadOrCreateTrustPolicy(config: NodeConfig): { policy: TrustPolicy; createdOperatorKey: string | null } {
  if (existsSync(config.trustPolicyPath)) return { policy: loadTrustPolicy(config.trustPolicyPath), createdOperatorKey: null };
  mkdirSync(config.dataDir, { recursive: true, mode: DATA_DIR_MODE });
  const keyPath = join(config.dataDir, OPERATOR_KEY_FILE);
  // A key left by a start that stopped before writing the policy is reused, never replaced.
  const operator = existsSync(keyPath) ? readSigningKey(keyPath) : generateSigningKeyPair();
  if (!existsSync(keyPath)) writeSigningKey(keyPath, operator);
  const policy: TrustPolicy = { signers: [{ key: operator.publicKey, weight: 1, label: 'operator' }], threshold: 1 };
  writeFileSync(config.trustPolicyPath, JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 });
  return { policy, createdOperatorKey: keyPath };
}
