// The workload side of a pipe end, shared by producer and consumer: which workload,
// what an end works with, and how one of its incarnations ended.
import { setTimeout as delay } from 'node:timers/promises';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Driver } from '../../../drivers/contract.ts';
import type { PipeIdentity } from '../../../blueprints/pipes.ts';

/** A local pipe end's workload: the driver that runs it and its engine-side id. */
export interface PipeWorkload {
  driver: Driver;
  id: string;
}

/** What either end of a pipe works with. */
export interface PipeEndContext {
  js: JetStreamClient;
  jsm: JetStreamManager;
  pipe: PipeIdentity;
  /** The end's workload: A for the producer, B for the consumer. */
  workload: PipeWorkload;
  /** Stops the end (a producer lets the stdout go; a consumer lets B's stdin go, and with StdinOnce B sees EOF). */
  signal: AbortSignal;
  logger: Logger;
}

/** How long the state may lag behind the streams: Docker closes an attach a moment before it records the exit. */
const SETTLE_MS = 5000;
const SETTLE_POLL_MS = 50;

/**
 * How incarnation `startedAt` ended: its exit code, or null when that is gone (the
 * workload was removed or started again). Null as a whole when it still runs after the
 * settle time (the attach broke, not the workload).
 */
export async function endOf(w: PipeWorkload, startedAt: string, signal: AbortSignal): Promise<{ exitCode: number | null } | null> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const observed = await w.driver.inspect(w.id);
    if (!observed || observed.startedAt !== startedAt) return { exitCode: null };
    if (observed.state === 'exited') return { exitCode: observed.exitCode };
    if (Date.now() >= deadline || signal.aborted) return null;
    await delay(SETTLE_POLL_MS, undefined, { signal }).catch(() => undefined);
  }
}
