// What one owner may keep in JetStream: every bucket of an owner has a max_bytes (the
// file contents `ownerBytes`, each KV bucket `ownerKvBytes`), JetStream refuses what
// goes past it (the buckets discard new messages, never old ones), and the number of
// owners with storage is capped. A bucket's max_bytes is reserved from the server's
// max_file_store when it is made: the config checks that every owner fits.
import type { JetStreamManager } from '@nats-io/jetstream';
import { ZoneError } from '../../../lib/errors.ts';
import { FsError } from '../interfaces.ts';
import { ownerIdOf } from './buckets.ts';
import { retryingStreamNotFound } from './jetstream-retry.ts';

export interface OwnerQuota {
  /** max_bytes of the owner's object store (the contents of /zone/fs). */
  ownerBytes: number;
  /** max_bytes of each of the owner's KV buckets (namespace, readers, process table). */
  ownerKvBytes: number;
}

const MIB = 2 ** 20;
export const DEFAULT_OWNER_QUOTA: OwnerQuota = { ownerBytes: 256 * MIB, ownerKvBytes: 16 * MIB };

/** The owner's KV buckets: namespace, readers, process table. */
export const OWNER_KV_BUCKETS = 3;

/** What JetStream reserves for one owner's buckets. */
export function ownerReservation(quota: OwnerQuota): number {
  return quota.ownerBytes + OWNER_KV_BUCKETS * quota.ownerKvBytes;
}

/**
 * Sets `maxBytes` on a stream made before the bound existed (or with another one): kvm
 * and objm create a missing bucket with its options but leave an existing one as it is.
 */
export async function boundStream(jsm: JetStreamManager, stream: string, maxBytes: number): Promise<void> {
  // Made by kvm/objm, maybe through another server.
  const info = await retryingStreamNotFound(() => jsm.streams.info(stream));
  if (info.config.max_bytes === maxBytes) return;
  await jsm.streams.update(stream, { ...info.config, max_bytes: maxBytes });
}

// JetStream's words: a stream at its max_bytes ("maximum bytes exceeded"); the server's
// max_file_store reserved or used up ("insufficient storage resources available"), or
// its disk full.
const OWNER_FULL = /maximum bytes exceeded/i;
const NODE_FULL = /insufficient storage|storage resources|no space left/i;

function says(err: unknown, words: RegExp): boolean {
  return err instanceof Error && (words.test(err.message) || (err.cause instanceof Error && words.test(err.cause.message)));
}

/** `err` as ENOSPC naming the bound when it says storage is full; as it is otherwise. */
export function noSpaceError(err: unknown, what: string, quota: OwnerQuota): unknown {
  if (says(err, OWNER_FULL)) {
    return new FsError('ENOSPC', `${what}: the owner's shared storage is full (limits.ownerBytes = ${quota.ownerBytes} bytes of contents, limits.ownerKvBytes = ${quota.ownerKvBytes} per namespace bucket); remove files to make room`);
  }
  if (says(err, NODE_FULL)) {
    return new FsError('ENOSPC', `${what}: this node's JetStream storage is full or reserved by other owners' buckets (limits.jetstreamFileBytes, or the disk)`);
  }
  return err;
}

/** The owner ids (ownerIdOf) that have storage in JetStream, read from the names of their buckets' streams. */
export async function ownersWithStorage(jsm: JetStreamManager): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const name of jsm.streams.names()) {
    const match = /^(?:KV_zone-(?:fs|readers|proc)|OBJ_zone-files)-([0-9a-f]{32})$/.exec(name);
    if (match) ids.add(match[1]!);
  }
  return ids;
}

/**
 * Refuses (429) storage for one more owner once `max` owners have some. An owner that
 * has it already, or `resident` (a blueprint of it is on this node), is always let in:
 * keys anyone can make must not crowd out the owners of this node's workloads.
 */
export async function admitOwner(jsm: JetStreamManager, owner: string, options: { max: number; resident: boolean }): Promise<void> {
  if (options.resident) return;
  const owners = await ownersWithStorage(jsm);
  if (owners.has(ownerIdOf(owner)) || owners.size < options.max) return;
  throw new ZoneError('TOO_MANY', `this node holds the shared storage of ${owners.size} owners, the most it takes (limits.owners = ${options.max}); owners of blueprints on this node are always taken`, undefined, { limit: options.max });
}
