// One owner's shared state in JetStream: the names of its buckets, the key tokens of
// paths and process rows, and how many copies a bucket keeps. Pure.
import { createHash } from 'node:crypto';
import { parsePublicKey } from '../../../lib/ed25519.ts';

export interface OwnerBuckets {
  /** KV: path -> entry (the namespace of /zone/fs), plus the marks of discarded contents. */
  namespace: string;
  /** Object store: the files' contents, one immutable object per written version. */
  files: string;
  /** KV with a TTL: who is reading which object, so it outlives its replacement. */
  readers: string;
  /** KV: node/blueprint/workload -> process row. */
  procs: string;
}

/**
 * 32 hex digits of sha256 of the owner's raw public key: bucket names take only
 * [-_A-Za-z0-9], and 128 bits keep two owners from ever sharing a bucket.
 */
export function ownerIdOf(owner: string): string {
  return createHash('sha256').update(parsePublicKey(owner, 'owner')).digest('hex').slice(0, 32);
}

export function bucketsOf(owner: string): OwnerBuckets {
  const id = ownerIdOf(owner);
  return { namespace: `zone-fs-${id}`, files: `zone-files-${id}`, readers: `zone-readers-${id}`, procs: `zone-proc-${id}` };
}

/** A key token for any non-empty text (subject tokens take few characters, and no dot). */
export function tokenOf(text: string): string {
  if (text === '') throw new Error('an empty name cannot be a key token');
  return Buffer.from(text, 'utf8').toString('base64url');
}

export function textOfToken(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

/** Checks a bucket's number of copies: 1 on a lone node, up to 3 in a cluster (JetStream allows 5). */
export function checkReplicas(replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new Error(`replicas is ${replicas}; expected an integer from 1 (a lone node) to 5 (JetStream's limit), at most the number of servers`);
  }
}
