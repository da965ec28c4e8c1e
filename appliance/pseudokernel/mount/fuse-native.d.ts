// The part of fuse-native (v2, CommonJS, no types of its own) that the /zone mount uses.
declare module 'fuse-native' {
  namespace Fuse {
    /** A negative errno, or 0 for success; read and write pass a byte count instead. */
    type Code = number;

    interface Stat {
      mode: number;
      size: number;
      uid?: number;
      gid?: number;
      nlink?: number;
      blksize?: number;
      blocks?: number;
      atime?: Date | number;
      mtime?: Date | number;
      ctime?: Date | number;
    }

    /** Callback style: each operation answers exactly once through `cb`. */
    interface Operations {
      getattr(path: string, cb: (code: Code, stat?: Stat) => void): void;
      access(path: string, mode: number, cb: (code: Code) => void): void;
      readdir(path: string, cb: (code: Code, names?: string[]) => void): void;
      /** `fd` must not be 0: fuse-native treats 0 as "no handle". */
      open(path: string, flags: number, cb: (code: Code, fd?: number) => void): void;
      create(path: string, mode: number, cb: (code: Code, fd?: number) => void): void;
      read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrCode: number) => void): void;
      write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrCode: number) => void): void;
      flush(path: string, fd: number, cb: (code: Code) => void): void;
      release(path: string, fd: number, cb: (code: Code) => void): void;
      truncate(path: string, size: number, cb: (code: Code) => void): void;
      ftruncate(path: string, fd: number, size: number, cb: (code: Code) => void): void;
      utimens(path: string, atime: number, mtime: number, cb: (code: Code) => void): void;
      chmod(path: string, mode: number, cb: (code: Code) => void): void;
      mknod(path: string, mode: number, dev: number, cb: (code: Code) => void): void;
      mkdir(path: string, mode: number, cb: (code: Code) => void): void;
      rmdir(path: string, cb: (code: Code) => void): void;
      unlink(path: string, cb: (code: Code) => void): void;
      rename(from: string, to: string, cb: (code: Code) => void): void;
      /** `path` is the new name. */
      link(target: string, path: string, cb: (code: Code) => void): void;
      symlink(target: string, path: string, cb: (code: Code) => void): void;
    }

    interface Options {
      allowOther?: boolean;
      /** Created when missing. */
      mkdir?: boolean;
      /** Unmounts a dead mount (ENOTCONN) left at the mountpoint first. */
      force?: boolean;
      fsname?: string;
      /** Seconds; fuse-native drops a falsy value, so zero has to be the string '0'. */
      attrTimeout?: number | string;
      entryTimeout?: number | string;
      /** Milliseconds before an unanswered operation fails with ETIMEDOUT. */
      timeout?: number | false;
    }
  }

  class Fuse {
    constructor(mountpoint: string, ops: Partial<Fuse.Operations>, options?: Fuse.Options);
    mount(cb: (err: Error | null) => void): void;
    /** `fusermount -uz`, then releases the native side. */
    unmount(cb: (err: Error | null) => void): void;
    /** The `-o...` argument given to libfuse; overridden to add options fuse-native does not know. */
    protected _fuseOptions(): string;
  }

  export = Fuse;
}
