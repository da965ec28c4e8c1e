// The blueprint format (v1): the one source of the TypeScript types, the runtime
// validation, the published JSON Schema and the API's OpenAPI document.
import { Type, type Static } from '@sinclair/typebox';
import { PUBLIC_KEY_PATTERN } from '../lib/ed25519.ts';
import { IMAGE_PATTERN } from './image-ref.ts';
import { DURATION_PATTERN, SIZE_PATTERN } from './units.ts';

const strict = { additionalProperties: false } as const;

export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const Name = Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'lower-case letters, digits and dashes' });

/** `ed25519:` and the 32-byte public key in standard base64. */
export const PublicKey = Type.String({ pattern: PUBLIC_KEY_PATTERN, description: 'ed25519:BASE64 public key' });

/** A node id (see appliance/identity) or "*" for any node the policy lets it run on. */
export const NODE_PATTERN = '^([a-z0-9]{1,64}|\\*)$';

/**
 * A value sealed to the node's X25519 box key (blueprints/seal.ts). The old unbound
 * form (sealed:BASE64, v1) still matches so that the blueprint checks can say to re-seal it.
 */
export const SEALED_PATTERN = '^sealed:(v2:)?[A-Za-z0-9+/]{1,8192}={0,2}$';
export const Sealed = Type.String({ pattern: SEALED_PATTERN, description: 'sealed:v2:BASE64 (zone seal), a NaCl box to the node box key bound to its owner, node, blueprint and field' });

const IPV4 = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}';
export const Ipv4 = Type.String({ pattern: `^${IPV4}$`, description: 'an IPv4 address' });
export const Cidr = Type.String({ pattern: `^${IPV4}/([0-9]|[12][0-9]|3[0-2])$`, description: 'an IPv4 CIDR, e.g. 10.88.1.0/24' });
export const Endpoint = Type.String({ pattern: `^(${IPV4}|[a-z0-9.-]{1,253}):[0-9]{1,5}$`, description: 'host:port' });

export const Size = Type.String({ pattern: SIZE_PATTERN, description: 'bytes, with an optional unit: K M G T Ki Mi Gi Ti' });
export const Duration = Type.String({ pattern: DURATION_PATTERN, description: 'a duration: 250ms, 5s, 2m, 1h' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });

const Argv = Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256 });
export const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';

export const WireguardPeer = Type.Object({
  publicKey: Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'the peer\'s WireGuard public key' }),
  endpoint: Type.Optional(Endpoint),
  allowedIPs: Type.Array(Cidr, { minItems: 1, maxItems: 64 }),
  persistentKeepalive: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
}, strict);

export const Network = Type.Object({
  name: Name,
  subnet: Cidr,
  ipRange: Type.Optional(Cidr),
  wireguard: Type.Optional(Type.Object({
    privateKey: Sealed,
    listenPort: Port,
    peers: Type.Array(WireguardPeer, { maxItems: 256 }),
  }, strict)),
}, strict);

export const Resources = Type.Object({
  cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024 })),
  memory: Type.Optional(Size),
  disk: Type.Optional(Type.String({ pattern: SIZE_PATTERN, description: 'a VM booted from a disk image: the size of its root disk, a volume kept across versions (at least the image\'s; grows in a later version, never shrinks)' })),
  pids: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
}, strict);

export const Health = Type.Object({
  command: Argv,
  interval: Type.Optional(Duration),
  timeout: Type.Optional(Duration),
  retries: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
}, strict);

export const NetworkAttachment = Type.Object({ name: Name, ip: Ipv4 }, strict);

export const PublishedPort = Type.Object({
  container: Port,
  host: Port,
  protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
}, strict);

/** A host path (`source`, which the node policy must allow) or one of the blueprint's volumes (`volume`): exactly one of them. */
export const Mount = Type.Object({
  source: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096, description: 'a host path the node policy allows' })),
  volume: Type.Optional(Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'the name of a filesystem volume of this blueprint' })),
  target: Type.String({ pattern: '^/', maxLength: 4096 }),
  readOnly: Type.Optional(Type.Boolean()),
}, strict);

/** A block volume of the blueprint given to a VM as a virtio disk (vdb, vdc, ... in order). */
export const Disk = Type.Object({
  volume: Name,
}, strict);

/**
 * Data that outlives its workloads: made before the first workload that uses it, kept
 * when they are replaced or removed, deleted a retention period after a later version
 * (or the tombstone) no longer lists it.
 */
export const Volume = Type.Object({
  name: Name,
  size: Type.String({ pattern: SIZE_PATTERN, description: 'bytes, with an optional unit: K M G T Ki Mi Gi Ti; may grow in a later version, never shrink' }),
  kind: Type.Optional(Type.Union([Type.Literal('filesystem'), Type.Literal('block')], { description: 'filesystem (ext4, mounted into containers; the default) or block (a qcow2, a VM\'s virtio disk)' })),
}, strict);

export const RestartPolicy = Type.Union([Type.Literal('always'), Type.Literal('on-failure'), Type.Literal('never')]);

/** Fields every workload kind has. Risky ones (privileged ... devices) need the node policy's consent. */
const workloadFields = {
  name: Name,
  image: Type.String({ minLength: 1, maxLength: 1024, pattern: IMAGE_PATTERN, description: 'name@sha256:DIGEST (pinned: fetched from the grid when missing), a local image reference, or a disk image path for a VM' }),
  command: Type.Optional(Argv),
  env: Type.Optional(Type.Record(Type.String({ pattern: ENV_NAME }), Type.String({ maxLength: 65536 }), { maxProperties: 256 })),
  workdir: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096 })),
  resources: Type.Optional(Resources),
  restart: Type.Optional(RestartPolicy),
  health: Type.Optional(Health),
  networks: Type.Optional(Type.Array(NetworkAttachment, { maxItems: 16 })),
  ports: Type.Optional(Type.Array(PublishedPort, { maxItems: 64 })),
  privileged: Type.Optional(Type.Boolean()),
  capabilities: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z_]{2,32}$' }), { maxItems: 64 })),
  hostNetwork: Type.Optional(Type.Boolean()),
  mounts: Type.Optional(Type.Array(Mount, { maxItems: 32 })),
  devices: Type.Optional(Type.Array(Type.String({ pattern: '^/dev/', maxLength: 256 }), { maxItems: 32 })),
  readOnlyRootfs: Type.Optional(Type.Boolean()),
};

export const ContainerWorkload = Type.Object({ ...workloadFields, kind: Type.Literal('container') }, strict);
export const VmWorkload = Type.Object({
  ...workloadFields,
  kind: Type.Literal('vm'),
  vcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  disks: Type.Optional(Type.Array(Disk, { maxItems: 16 })),
}, strict);
export const Workload = Type.Union([ContainerWorkload, VmWorkload]);

/** A workload's stream: `WORKLOAD.stdout`, or for a remote end `NODE/BLUEPRINT/WORKLOAD.stdin`. */
export const PIPE_END_PATTERN = '^(([a-z0-9]{1,64})/([a-z0-9-]{1,63})/)?([a-z0-9-]{1,63})\\.(stdout|stdin)$';
export const Pipe = Type.Object({
  from: Type.String({ pattern: PIPE_END_PATTERN }),
  to: Type.String({ pattern: PIPE_END_PATTERN }),
}, strict);

export const Signature = Type.Object({
  key: PublicKey,
  sig: Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', description: 'base64 of the 64-byte ed25519 signature' }),
}, strict);

/** The largest version a blueprint may have: version + 1 is still a safe integer (and an SQLite INTEGER). */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER - 1;

export const Blueprint = Type.Object({
  name: Name,
  // One below the largest safe integer: a later version or tombstone (version + 1) can always follow.
  version: Type.Integer({ minimum: 1, maximum: MAX_VERSION, description: `strictly increasing, 1 to ${MAX_VERSION} (2^53 - 2) so that a later version or tombstone can follow` }),
  owner: PublicKey,
  node: Type.String({ pattern: NODE_PATTERN }),
  expires: Type.Optional(Type.String({ format: 'date-time', maxLength: 64 })),
  delete: Type.Optional(Type.Boolean({ description: 'a tombstone: removes every workload of this blueprint' })),
  networks: Type.Optional(Type.Array(Network, { maxItems: 16 })),
  volumes: Type.Optional(Type.Array(Volume, { maxItems: 32 })),
  workloads: Type.Optional(Type.Array(Workload, { maxItems: 256 })),
  pipes: Type.Optional(Type.Array(Pipe, { maxItems: 256 })),
  signatures: Type.Optional(Type.Array(Signature, { maxItems: 32 })),
}, { ...strict, $id: 'https://zone.dev/schemas/blueprint-v1.json', title: 'Zone blueprint v1' });

export type Blueprint = Static<typeof Blueprint>;
export type Workload = Static<typeof Workload>;
export type ContainerWorkload = Static<typeof ContainerWorkload>;
export type VmWorkload = Static<typeof VmWorkload>;
export type Network = Static<typeof Network>;
export type Pipe = Static<typeof Pipe>;
export type Volume = Static<typeof Volume>;
export type Mount = Static<typeof Mount>;
export type Signature = Static<typeof Signature>;
export type Health = Static<typeof Health>;
export type RestartPolicy = Static<typeof RestartPolicy>;
