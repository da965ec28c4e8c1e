// The pseudokernel's small interfaces: the FUSE layer (/zone inside workloads), the
// shared state on NATS JetStream and the pipes talk through these only.
import type { constants } from 'node:os';
import type { Readable } from 'node:stream';

export type ErrnoName = keyof typeof constants.errno;

/** A failure with a POSIX code (`err.code`), as the file system layers throw them. */
export class FsError extends Error {
  constructor(readonly code: ErrnoName, message: string) {
    super(`${code}: ${message}`);
    this.name = 'FsError';
  }
}

/** The kinds of entry of `/zone/fs`. A FIFO or socket entry is a name only: the kernel of the node that opens it makes the pipe. */
export type FsEntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket';

/** What `stat` says of a path of the owner's shared file namespace (`/zone/fs`). */
export interface FsEntry {
  type: FsEntryType;
  /** Bytes of a file's content; of a symlink, its target's. */
  size: number;
  /** Last change of the content, ms since the epoch. */
  mtimeMs: number;
  /** Permission bits only (e.g. 0o644, with setuid/setgid/sticky); the type is `type`. */
  mode: number;
  /** Owner and group, as the workloads see them (their own ids, never the host's). Stored entries without them are root's. */
  uid?: number;
  gid?: number;
  /** Last access set (utimens) and last change of the entry itself (mode, owner, links), ms since the epoch. */
  atimeMs?: number;
  ctimeMs?: number;
  /** Names the entry has (hard links): 1 unless linked; a directory's 2 + its subdirectories. */
  nlink?: number;
  /** A symlink's target, never followed by the server. */
  target?: string;
  /** The inode number, kept under every name and across renames; none for entries stored before they had one. */
  ino?: number;
}

/** Who a new entry belongs to: the creating process's ids. */
export interface FsOwner {
  uid: number;
  gid: number;
}

/** What statvfs says: the owner's storage quota and what its files use of it. */
export interface FsUsage {
  totalBytes: number;
  usedBytes: number;
}

/**
 * One version of a file, open for reading: its bytes by range as of the open, however the
 * file changes meanwhile, until closed. Nothing is copied at the open.
 */
export interface FileVersion {
  readonly size: number;
  /** Up to `length` bytes from `position` (fewer at the end, none past it). */
  read(position: number, length: number): Promise<Buffer>;
  /** Idempotent; the version may be collected once no one holds it. */
  close(): Promise<void>;
}

/**
 * The files shared by every workload of one owner on every node. Paths are absolute
 * inside the namespace (`/`, `/a/b.txt`), already normalised (no `.`/`..`, no trailing
 * slash). Close-to-open consistency: `write` publishes a file's whole new content at
 * once (a reader that opens after it returns, on any node, sees all of it; one that
 * opened before keeps the content it had). Errors carry a POSIX `code` (ENOENT,
 * EEXIST, ENOTDIR, EISDIR, ENOTEMPTY) so the FUSE layer can map them.
 */
export interface GridFs {
  stat(path: string): Promise<FsEntry | null>;
  /** Names of a directory's entries (not `.`/`..`). */
  list(dir: string): Promise<string[]>;
  /** The whole content as of now. */
  read(path: string): Promise<Readable>;
  /** The content as of now, read by range (what an open file descriptor reads). */
  open(path: string): Promise<FileVersion>;
  /**
   * Replaces (or creates) the file with the bytes of `source`; the parent must exist.
   * `mode` when given (else the file's, or 0o644); `owner` when the file is created (an existing file keeps its own).
   */
  write(path: string, source: Readable, mode?: number, owner?: FsOwner): Promise<void>;
  mkdir(path: string, mode?: number, owner?: FsOwner): Promise<void>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Replaces `to` when it is a file (POSIX rename). */
  rename(from: string, to: string): Promise<void>;
  /** Sets the permission bits (and the change time) of an entry; its content stays as it is. */
  chmod(path: string, mode: number): Promise<void>;
  /** Sets the owner and/or group (undefined: left as it is), and the change time. */
  chown(path: string, uid: number | undefined, gid: number | undefined): Promise<void>;
  /** Sets the access and/or modification time (undefined: left as it is), and the change time. */
  utimens(path: string, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void>;
  /** Creates an empty file, a FIFO or a socket entry (EEXIST when the name is taken): its attributes as created. */
  mknod(path: string, type: 'file' | 'fifo' | 'socket', mode: number, owner: FsOwner): Promise<FsEntry>;
  /** Creates a symbolic link whose content is `target` (not checked, not followed). */
  symlink(target: string, path: string, owner: FsOwner): Promise<void>;
  readlink(path: string): Promise<string>;
  /** A second name `path` for the entry at `existing` (not a directory): both see the same content and attributes. */
  link(existing: string, path: string): Promise<void>;
  /** The owner's quota and use. */
  usage(): Promise<FsUsage>;
}

/** One row of the grid's process table (`/zone/proc/<blueprint>/<workload>`). */
export interface ProcEntry {
  node: string;
  blueprint: string;
  workload: string;
  kind: string;
  state: string;
  restarts: number;
  /** ISO 8601 time of the last state change. */
  since: string;
  /** The volumes it mounts, when it has any (`/zone/proc/<blueprint>/<workload>/volumes`). */
  volumes?: ProcVolume[];
}

/** A volume as a workload uses it: a container's mount, or a VM's virtio disk (`target` its device). */
export interface ProcVolume {
  name: string;
  kind: string;
  sizeBytes: number;
  /** What its data uses, measured when the row was published. */
  usedBytes: number;
  target: string;
  readOnly: boolean;
}

/** A pipe of the grid and how far its consumer is behind. */
export interface PipeLag {
  from: string;
  to: string;
  /** Messages after the committed position: what the consumer has still to commit. */
  lagMessages: number;
  /** What the stream stores of them (payload and headers, with the last committed marker); 0 when none. */
  lagBytes: number;
}

/** Every workload of one owner, on every node. */
export interface ProcTable {
  list(): Promise<ProcEntry[]>;
}

/** Who a workload is (`/zone/self`). */
export interface SelfInfo {
  name: string;
  blueprint: string;
  node: string;
  owner: string;
  /** The workload's overlay address, when it has one. */
  ip: string | null;
}
