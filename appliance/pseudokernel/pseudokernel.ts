// The pseudokernel as the appliance owns it: the node's supervised nats-server and one
// client connection to it, and what the appliance feeds through them (its workloads'
// rows in their owners' process tables). Optional and never fatal: when nats-server is
// missing or does not start, the appliance runs its workloads without it and says why
// in GET /v1/node.
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Fingerprint } from '../../drivers/contract.ts';
import type { NodeConfig } from '../config.ts';
import type { WorkloadRecord } from '../store.ts';
import type { ProcEntry } from './contract.ts';
import { NatsServer } from './nats-server.ts';
import { NatsProcTable } from './proc-table.ts';

export interface PseudokernelSettings {
  /** The nats-server executable; `nats-server` from $PATH by default. */
  binary?: string;
  /** How long the start waits for JetStream; nats-server's supervisor default otherwise. */
  startTimeoutMs?: number;
}

export interface PseudokernelOptions extends PseudokernelSettings {
  /** This node's id: the server's name and the `node` of its process rows. */
  node: string;
  /** The appliance's data directory: the server keeps its store in `nats/` below it. */
  dataDir: string;
  nats: NodeConfig['nats'];
  logger: Logger;
}

/** The kind it shows as in GET /v1/node's `drivers`. */
export const PSEUDOKERNEL_KIND = 'pseudokernel';

export class Pseudokernel {
  readonly server: NatsServer;
  private nc: NatsConnection | null = null;
  /** Why it is not available (null once it started). */
  private unavailable: string | null = 'not started';
  private readonly procTables = new Map<string, Promise<NatsProcTable>>();
  /** One chain per workload, so its rows reach the table in the order of its changes. */
  private readonly publishing = new Map<string, Promise<void>>();

  constructor(private readonly o: PseudokernelOptions) {
    this.server = new NatsServer({
      dataDir: join(o.dataDir, 'nats'), serverName: o.node, host: o.nats.host, port: o.nats.port, logger: o.logger,
      ...(o.nats.cluster ? { cluster: o.nats.cluster } : {}),
      ...(o.binary ? { binary: o.binary } : {}),
      ...(o.startTimeoutMs ? { startTimeoutMs: o.startTimeoutMs } : {}),
    });
  }

  get available(): boolean {
    return this.nc !== null;
  }

  /** Starts nats-server and connects; a failure is logged and kept as the reason, never thrown. */
  async start(): Promise<void> {
    try {
      await this.server.start();
      this.nc = await this.server.connect();
      this.unavailable = null;
    } catch (err) {
      this.unavailable = (err as Error).message;
      this.o.logger.error({ err, url: this.server.url }, 'pseudokernel unavailable: nats-server did not start; workloads run without /zone, proc and pipes');
      await this.server.stop().catch(() => undefined);
    }
  }

  fingerprint(): Fingerprint {
    if (!this.nc) return { kind: PSEUDOKERNEL_KIND, available: false, reason: this.unavailable ?? 'stopped', details: {} };
    return { kind: PSEUDOKERNEL_KIND, available: true, details: { nats: this.server.url, natsPid: this.server.pid ?? 0 } };
  }

  /** The owner's process table (made on first use); throws when the pseudokernel is unavailable. */
  procTable(owner: string): Promise<NatsProcTable> {
    const nc = this.connection();
    let table = this.procTables.get(owner);
    if (!table) {
      table = NatsProcTable.open(nc, { owner, replicas: this.replicas, logger: this.o.logger });
      // A failed open is tried again by the next user.
      table.catch(() => this.procTables.delete(owner));
      this.procTables.set(owner, table);
    }
    return table;
  }

  /**
   * A workload of this node changed (`record`) or was forgotten (`record` null, with its
   * identity): its row in the owner's process table follows. Does nothing while unavailable.
   */
  workloadChanged(identity: { owner: string; blueprint: string; workload: string }, record: WorkloadRecord | null): void {
    if (!this.nc) return;
    const key = `${identity.owner}|${identity.blueprint}|${identity.workload}`;
    const row: ProcEntry | null = record && {
      node: this.o.node, blueprint: record.blueprint, workload: record.workload, kind: record.kind,
      state: record.state, restarts: record.restarts, since: record.since,
    };
    const previous = this.publishing.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const table = await this.procTable(identity.owner);
      if (row) await table.publish(row);
      else await table.remove(this.o.node, identity.blueprint, identity.workload);
    }).catch((err: unknown) => {
      this.o.logger.warn({ err, ...identity }, 'process table: the workload\'s row could not be published');
    }).finally(() => {
      if (this.publishing.get(key) === next) this.publishing.delete(key);
    });
    this.publishing.set(key, next);
  }

  /** Resolves once every change handed in so far is in its table (or failed). */
  async published(): Promise<void> {
    while (this.publishing.size) await Promise.all(this.publishing.values());
  }

  /** Lets the rows reach their tables, then closes the connection and stops the server. */
  async close(): Promise<void> {
    await this.published();
    const nc = this.nc;
    this.nc = null;
    this.unavailable = 'stopped';
    await nc?.close().catch((err: unknown) => this.o.logger.warn({ err }, 'closing the NATS connection failed'));
    await this.server.stop();
  }

  private connection(): NatsConnection {
    if (!this.nc) throw new Error(`the pseudokernel is unavailable: ${this.unavailable ?? 'stopped'}`);
    return this.nc;
  }

  /** A lone server holds one copy; a cluster three (or all its servers when fewer). */
  private get replicas(): number {
    return this.o.nats.cluster ? Math.min(3, this.o.nats.cluster.routes.length + 1) : 1;
  }
}
