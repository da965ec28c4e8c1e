// The API's response schemas (TypeBox): they serialize the replies (fields not listed
// here never leave the node, whatever the appliance returns) and document them in the
// OpenAPI. They mirror appliance/types.ts, which the compiler checks below.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Name, PublicKey } from '../blueprints/schema.ts';
import type { BlueprintStatus, NodeInfo, SubmitResult, WorkloadStatus, ZoneEvent } from '../appliance/types.ts';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Time = Type.String({ format: 'date-time' });

const CapacityShape = Type.Object({
  cpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
});

export const NodeInfoSchema = Type.Object({
  id: Type.String(),
  signingKey: Type.String({ description: 'ed25519:BASE64' }),
  boxKey: Type.String({ description: 'BASE64 X25519 key: seal secrets to it (zone seal --node-key)' }),
  version: Type.String(),
  uptimeSeconds: Type.Integer(),
  drivers: Type.Array(Type.Object({
    kind: Type.String(),
    available: Type.Boolean(),
    reason: Type.Optional(Type.String()),
    version: Type.Optional(Type.String()),
    details: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
    capabilities: Type.Optional(Type.Object({
      attach: Type.Boolean({ description: 'attach joins the main process\'s stdio (pipes need it)' }),
      console: Type.Boolean({ description: 'attach is the machine\'s console' }),
      mount: Type.Boolean({ description: 'the workload sees the pseudokernel\'s /zone' }),
    }, { description: 'what a workload driver can do (the network driver and the pseudokernel have none)' })),
  })),
  capacity: Type.Object({ total: CapacityShape, reserved: CapacityShape, free: CapacityShape }),
  volumes: Type.Optional(Type.Object({
    count: Type.Integer(),
    sizeBytes: Type.Integer({ description: 'what the volumes may hold (released ones included)' }),
    usedBytes: Type.Integer({ description: 'what they hold now' }),
  }, { description: 'the volumes on this node (absent where the node serves none)' })),
  release: Type.Optional(Type.Object({
    running: Type.String({ description: 'the version of the node software that answers' }),
    previous: Type.Union([Type.String(), Type.Null()], { description: 'the version it replaced, where a rollback would go' }),
    supervised: Type.Boolean({ description: 'a supervisor runs it (only then can it take a release)' }),
    lastUpgrade: Type.Union([Type.Object({
      from: Type.String(), to: Type.String(),
      outcome: Type.Union([Type.Literal('succeeded'), Type.Literal('rolled-back')]),
      reason: Type.String({ description: 'what the health gate saw, or why it was rolled back' }),
      at: Type.String({ format: 'date-time' }), seconds: Type.Number(),
    }), Type.Null()]),
  }, { description: 'the node software: running and previous versions, the last upgrade' })),
}, { $id: 'NodeInfo' });

export const WorkloadStatusSchema = Type.Object({
  blueprint: Type.String(),
  owner: Type.String(),
  workload: Type.String(),
  kind: Type.String(),
  state: Type.Union((['pending', 'running', 'exited', 'backoff', 'crashloop', 'failed', 'unknown', 'removing'] as const).map((s) => Type.Literal(s))),
  health: Nullable(Type.Union([Type.Literal('starting'), Type.Literal('healthy'), Type.Literal('unhealthy')])),
  restarts: Type.Integer(),
  lastExit: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
  since: Time,
  nextRestartAt: Nullable(Time),
}, { $id: 'WorkloadStatus' });

export const BlueprintStatusSchema = Type.Object({
  name: Type.String(),
  owner: Type.String(),
  version: Type.Integer(),
  deleted: Type.Boolean(),
  acceptedAt: Time,
  workloads: Type.Array(Type.Ref('WorkloadStatus')),
}, { $id: 'BlueprintStatus', description: 'the desired version and what each workload is doing; never env values or sealed fields' });

export const VolumeStatusSchema = Type.Object({
  name: Type.String(),
  owner: Type.String(),
  blueprint: Type.String(),
  kind: Type.Union([Type.Literal('filesystem'), Type.Literal('block')]),
  sizeBytes: Type.Integer(),
  usedBytes: Type.Integer(),
  attachedTo: Type.Array(Type.String()),
  state: Type.Union([Type.Literal('ready'), Type.Literal('unmounted'), Type.Literal('released')]),
  deleteAt: Nullable(Time),
}, { $id: 'VolumeStatus', description: 'a volume on this node: size, use, the workloads that mount it, and when it goes once no blueprint lists it' });

export const VolumeListSchema = Type.Object({ volumes: Type.Array(Type.Ref('VolumeStatus')) });

export const BlueprintListSchema = Type.Object({ blueprints: Type.Array(Type.Ref('BlueprintStatus')) });

export const SubmitResultSchema = Type.Object({
  name: Type.String(),
  owner: Type.String(),
  version: Type.Integer(),
  deleted: Type.Boolean(),
}, { $id: 'SubmitResult' });

export const ZoneEventSchema = Type.Object({
  seq: Type.Integer({ description: 'increasing; resume with Last-Event-ID or ?after=' }),
  at: Time,
  blueprint: Nullable(Type.String()),
  owner: Nullable(Type.String()),
  workload: Nullable(Type.String()),
  from: Nullable(Type.String()),
  to: Type.String(),
  reason: Type.String(),
}, { $id: 'ZoneEvent' });

export const BlueprintParams = Type.Object({ name: Name });
export const WorkloadParams = Type.Object({ name: Name, workload: Name });
export const OwnerQuery = Type.Object({ owner: Type.Optional(PublicKey) });

/** All schemas referenced by $id, added to the server once. */
export const SHARED_SCHEMAS = [NodeInfoSchema, WorkloadStatusSchema, BlueprintStatusSchema, VolumeStatusSchema, SubmitResultSchema, ZoneEventSchema];

// The schemas must describe what the appliance returns: a drift is a compile error.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const mirrors: [
  Same<Static<typeof NodeInfoSchema>, NodeInfo>,
  Same<Static<typeof WorkloadStatusSchema>, WorkloadStatus>,
  Same<Omit<Static<typeof BlueprintStatusSchema>, 'workloads'>, Omit<BlueprintStatus, 'workloads'>>,
  Same<Static<typeof SubmitResultSchema>, SubmitResult>,
  Same<Static<typeof ZoneEventSchema>, ZoneEvent>,
] = [true, true, true, true, true];
void mirrors;
