// What dockerd reports -> ObservedWorkload. Engine data is input like any other: it is
// checked against a schema, and a container whose labels are missing or malformed
// (someone else's, or forged), or whose name is not the one of the identity they
// record, is not ours.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { NAME_PATTERN } from '../../blueprints/schema.ts';
import { PUBLIC_KEY_PATTERN } from '../../lib/ed25519.ts';
import type { HealthState, ObservedState, ObservedWorkload, WorkloadIdentity } from '../contract.ts';
import { isNameOf } from '../names.ts';
import { LABELS } from './spec.ts';

/** Engine-side names are made by the engine: zone-<blueprint>-<workload>-<hash>, [a-z0-9-]. */
export const CONTAINER_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,252}$';
const NODE_ID_PATTERN = '^[a-z0-9]{1,64}$';
const SPEC_HASH_PATTERN = '^[0-9a-f]{64}$';

const Labels = Type.Object({
  [LABELS.node]: Type.String({ pattern: NODE_ID_PATTERN }),
  [LABELS.owner]: Type.String({ pattern: PUBLIC_KEY_PATTERN }),
  [LABELS.blueprint]: Type.String({ pattern: NAME_PATTERN }),
  [LABELS.workload]: Type.String({ pattern: NAME_PATTERN }),
  [LABELS.specHash]: Type.String({ pattern: SPEC_HASH_PATTERN }),
});

/** The part of `GET /containers/{id}/json` this driver uses. */
const ContainerInspect = Type.Object({
  Name: Type.String(),
  Config: Type.Object({ Labels: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]) }),
  State: Type.Object({
    Status: Type.String(),
    ExitCode: Type.Integer(),
    StartedAt: Type.String(),
    FinishedAt: Type.String(),
    OOMKilled: Type.Boolean(),
    Pid: Type.Optional(Type.Integer({ minimum: 0 })),
    Health: Type.Optional(Type.Object({ Status: Type.String() })),
  }),
  /** The Docker networks it is joined to, by name. */
  NetworkSettings: Type.Optional(Type.Object({
    Networks: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Object({ NetworkID: Type.Optional(Type.String()) })), Type.Null()])),
  })),
});
export type ContainerInspect = Static<typeof ContainerInspect>;

export interface ContainerIdentity extends WorkloadIdentity {
  specHash: string;
}

/** Our identity from a container's labels (or an event's attributes); null when they are not ours. */
export function identityOf(labels: unknown): ContainerIdentity | null {
  if (!Value.Check(Labels, labels)) return null;
  return {
    node: labels[LABELS.node],
    owner: labels[LABELS.owner],
    blueprint: labels[LABELS.blueprint],
    workload: labels[LABELS.workload],
    specHash: labels[LABELS.specHash],
  };
}

/** The container's name without Docker's leading slash, or null when it is not one of ours. */
export function containerNameOf(name: string): string | null {
  const bare = name.startsWith('/') ? name.slice(1) : name;
  return new RegExp(CONTAINER_NAME_PATTERN).test(bare) ? bare : null;
}

/** Validated inspect data, or null when it does not have the shape this driver relies on. */
export function parseContainerInspect(info: unknown): ContainerInspect | null {
  return Value.Check(ContainerInspect, info) ? info : null;
}

/** ObservedWorkload of an inspected container; null when it is not ours. */
export function observedOf(info: unknown): ObservedWorkload | null {
  const c = parseContainerInspect(info);
  if (!c) return null;
  const id = containerNameOf(c.Name);
  const identity = identityOf(c.Config.Labels);
  // Labels of a workload on a container not named for it are a clash (or a forgery), not ours.
  if (!id || !identity || !isNameOf(id, identity)) return null;
  const state = observedStateOf(c.State.Status);
  return {
    ...identity,
    id,
    kind: 'container',
    state,
    exitCode: state === 'exited' ? c.State.ExitCode : null,
    startedAt: timeOf(c.State.StartedAt),
    finishedAt: timeOf(c.State.FinishedAt),
    health: healthOf(c.State.Health?.Status),
    oomKilled: c.State.OOMKilled,
    ...(state === 'running' && c.State.Pid ? { pid: c.State.Pid } : {}),
  };
}

export function observedStateOf(status: string): ObservedState {
  switch (status) {
    case 'created':
      return 'created';
    case 'running':
    case 'restarting': // only with a Docker restart policy, which ours never set
      return 'running';
    case 'paused':
      return 'paused';
    default: // exited, dead, removing, and anything a newer Docker may add
      return 'exited';
  }
}

export function healthOf(status: string | undefined): HealthState | null {
  return status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : null;
}

/** ISO time, or null for Docker's zero time (never started / never finished). */
function timeOf(value: string): string | null {
  const ms = Date.parse(value);
  return Number.isNaN(ms) || value.startsWith('0001-') ? null : value;
}
