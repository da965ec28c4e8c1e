// The grid's process table for one owner (/zone/proc): the appliance of every node
// publishes its workloads' rows into one KV bucket, keyed node.blueprint.workload (a
// token each), and any node lists every node's rows.
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ProcEntry, ProcTable } from '../interfaces.ts';
import { bucketsOf, checkReplicas, tokenOf } from '../nats/buckets.ts';
import { boundStream, DEFAULT_OWNER_QUOTA } from '../nats/owner-quota.ts';
import { kvKeys, retryingOpen, retryingStreamNotFound, retryingTimeouts } from '../nats/jetstream-retry.ts';

export interface NatsProcTableOptions {
  /** `ed25519:BASE64`: every owner has a table of its own. */
  owner: string;
  /** Copies of the bucket: 1 on a lone node, up to 3 in a cluster. */
  replicas: number;
  logger: Logger;
  /** The bucket's max_bytes (DEFAULT_OWNER_QUOTA's ownerKvBytes otherwise). */
  maxBytes?: number;
}

/** A row's volumes: as many as a workload may mount (blueprints/schema.ts bounds mounts and disks). */
const MAX_ROW_VOLUMES = 64;
const VolumeRow = Type.Object({
  name: Type.String({ minLength: 1 }),
  kind: Type.String(),
  sizeBytes: Type.Integer({ minimum: 0 }),
  usedBytes: Type.Integer({ minimum: 0 }),
  target: Type.String({ minLength: 1 }),
  readOnly: Type.Boolean(),
});

const Row = Type.Object({
  node: Type.String({ minLength: 1 }),
  blueprint: Type.String({ minLength: 1 }),
  workload: Type.String({ minLength: 1 }),
  kind: Type.String(),
  state: Type.String(),
  restarts: Type.Integer({ minimum: 0 }),
  since: Type.String(),
  volumes: Type.Optional(Type.Array(VolumeRow, { maxItems: MAX_ROW_VOLUMES })),
});

export class NatsProcTable implements ProcTable {
  /** Creates the owner's bucket where missing (its first user decides its replicas). */
  static async open(nc: NatsConnection, options: NatsProcTableOptions): Promise<NatsProcTable> {
    checkReplicas(options.replicas);
    const bucket = bucketsOf(options.owner).procs;
    // Gets from the stream leader: a row is read as last published.
    const maxBytes = options.maxBytes ?? DEFAULT_OWNER_QUOTA.ownerKvBytes;
    const kv = await retryingOpen(`opening the process table of ${options.owner}`, async () => {
      const opened = await new Kvm(nc).create(bucket, { history: 1, replicas: options.replicas, allow_direct: false, max_bytes: maxBytes });
      await boundStream(await jetstreamManager(nc), `KV_${bucket}`, maxBytes);
      return opened;
    });
    return new NatsProcTable(bucket, kv, options.logger);
  }

  private constructor(readonly bucket: string, private readonly kv: KV, private readonly logger: Logger) {}

  /** Sets the workload's row (a node publishes its own workloads). */
  async publish(entry: ProcEntry): Promise<void> {
    // The table may have been made through another server a moment ago (no stream here yet).
    await retryingStreamNotFound(() => this.kv.put(keyOf(entry.node, entry.blueprint, entry.workload), JSON.stringify(rowOf(entry))));
  }

  /** Drops the workload's row (it was removed from the node). */
  async remove(node: string, blueprint: string, workload: string): Promise<void> {
    await retryingStreamNotFound(() => this.kv.delete(keyOf(node, blueprint, workload)));
  }

  /** Every node's rows, by node, blueprint and workload. */
  async list(): Promise<ProcEntry[]> {
    const keys = await kvKeys(`listing ${this.bucket}`, this.kv);
    const rows = await Promise.all(keys.map(async (key) => {
      const stored = await retryingTimeouts(`reading ${key} in ${this.bucket}`, () => this.kv.get(key));
      if (!stored || stored.operation !== 'PUT') return null; // removed since the listing
      const row = parsed(stored.string());
      if (Value.Check(Row, row)) return rowOf(row);
      // One bad row must not hide the others.
      this.logger.warn({ bucket: this.bucket, key }, 'process table: a row that is not a process entry was skipped');
      return null;
    }));
    return rows.filter((row) => row !== null).sort((a, b) => a.node.localeCompare(b.node) || a.blueprint.localeCompare(b.blueprint) || a.workload.localeCompare(b.workload));
  }
}

/** The contract's fields only (`volumes` when there are some). */
function rowOf({ node, blueprint, workload, kind, state, restarts, since, volumes }: ProcEntry): ProcEntry {
  const row: ProcEntry = { node, blueprint, workload, kind, state, restarts, since };
  if (volumes?.length) row.volumes = volumes.map(({ name, kind, sizeBytes, usedBytes, target, readOnly }) => ({ name, kind, sizeBytes, usedBytes, target, readOnly }));
  return row;
}

function keyOf(node: string, blueprint: string, workload: string): string {
  return [node, blueprint, workload].map(tokenOf).join('.');
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
