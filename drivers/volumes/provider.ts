// The node's volumes (drivers/contract.ts VolumeProvider): one folder per volume under
// the data dir, named by its id, holding volume.json (whose it is, its kind and size,
// when it was released) and its data: data.ext4 loop-mounted at mnt/ (filesystem) or
// disk.qcow2 (block; for a disk-image VM's root disk an overlay over the image, which is
// only read). Everything is found again from the folders after a restart, and a
// mount a killed appliance left is used as it is.
import { mkdir, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../../lib/exec.ts';
import { KeyedLock } from '../keyed-lock.ts';
import { VolumeSpecError, type Fingerprint, type ObservedVolume, type VolumeIdentity, type VolumeKind, type VolumeProvider, type VolumeSpec } from '../contract.ts';
import { createOverlay, DiskImageError, diskImageInfo } from './disk-image.ts';
import { detachLoops, formatExt4, growExt4, isMounted, mountExt4, unmount } from './ext4.ts';

const ID_PATTERN = /^zv-[0-9a-f]{32}$/;
const QEMU_IMG_TIMEOUT_MS = 120_000;

interface VolumeFile extends VolumeIdentity {
  kind: VolumeKind;
  sizeBytes: number;
  releasedAt: string | null;
  /** The disk image a root disk overlays (VolumeSpec.base). */
  base?: string;
}

const sameIdentity = (a: VolumeIdentity, b: VolumeIdentity) => a.node === b.node && a.owner === b.owner && a.blueprint === b.blueprint && a.volume === b.volume;

export class HostVolumes implements VolumeProvider {
  readonly kind = 'volume';
  private readonly lock = new KeyedLock();

  /** `dir`: the folder of every volume of this node (created when missing). */
  constructor(private readonly dir: string, private readonly node: string) {}

  async fingerprint(): Promise<Fingerprint> {
    try {
      const [e2fs, qemu] = await Promise.all([runCommand(['mkfs.ext4', '-V']).catch((err: Error) => err.message), runCommand(['qemu-img', '--version'])]);
      return { kind: this.kind, available: true, details: { ext4: e2fs.split('\n')[0]?.trim() ?? '', qemuImg: qemu.split('\n')[0]?.trim() ?? '' } };
    } catch (err) {
      return { kind: this.kind, available: false, reason: (err as Error).message, details: {} };
    }
  }

  ensure(spec: VolumeSpec): Promise<ObservedVolume> {
    return this.lock.run(spec.id, () => this.ensureNow(spec));
  }

  private async ensureNow(spec: VolumeSpec): Promise<ObservedVolume> {
    if (!ID_PATTERN.test(spec.id) || spec.node !== this.node) throw new VolumeSpecError(spec.volume, 'id', `${spec.id} is not a volume id of node ${this.node}`);
    const dir = join(this.dir, spec.id);
    const meta = await this.read(spec.id);
    if (meta && !sameIdentity(meta, spec)) {
      throw new VolumeSpecError(spec.volume, 'name', `${spec.id} holds volume ${meta.blueprint}/${meta.volume} of owner ${meta.owner}; it is left alone`);
    }
    if (meta && meta.kind !== spec.kind) throw new VolumeSpecError(spec.volume, 'kind', `it is a ${meta.kind} volume; a volume keeps its kind (declare a new one)`);
    if (meta && meta.base !== spec.base) throw new VolumeSpecError(spec.volume, 'image', `it overlays ${meta.base ?? 'no image'}, not ${spec.base ?? 'no image'}; it is left alone`);
    // A root disk's size is a floor: at least the image's, whatever `disk` asks.
    if (meta && !spec.base && spec.sizeBytes < meta.sizeBytes) throw new VolumeSpecError(spec.volume, 'size', `${spec.sizeBytes} bytes is smaller than its ${meta.sizeBytes}; a volume grows but never shrinks`);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    const data = this.dataFile(spec.id, spec.kind);
    let size = meta?.sizeBytes ?? spec.sizeBytes;
    if (!(await exists(data))) {
      // Made under a temporary name and renamed: a crash never leaves a half-made image under the real one.
      const partial = `${data}.partial`;
      await rm(partial, { force: true });
      size = spec.sizeBytes;
      if (spec.kind === 'filesystem') await formatExt4(partial, spec.sizeBytes);
      else if (spec.base) size = Math.max(size, await this.overlay(spec, partial));
      else await runCommand(['qemu-img', 'create', '-q', '-f', 'qcow2', partial, String(spec.sizeBytes)], { timeoutMs: QEMU_IMG_TIMEOUT_MS });
      await rename(partial, data);
    }
    const mnt = join(dir, 'mnt');
    if (spec.kind === 'filesystem') {
      await mkdir(mnt, { recursive: true, mode: 0o755 });
      if (!(await isMounted(mnt))) await mountExt4(data, mnt);
    }
    if (spec.sizeBytes > size) {
      if (spec.kind === 'filesystem') await growExt4(data, mnt, spec.sizeBytes);
      // A VM that holds it may have grown it already (Driver.growDisk): qemu-img could not while it runs.
      else if ((await diskImageInfo(data)).virtualSize < spec.sizeBytes) await runCommand(['qemu-img', 'resize', '-q', data, String(spec.sizeBytes)], { timeoutMs: QEMU_IMG_TIMEOUT_MS });
    }
    const next: VolumeFile = {
      node: spec.node, owner: spec.owner, blueprint: spec.blueprint, volume: spec.volume, kind: spec.kind, sizeBytes: Math.max(size, spec.sizeBytes), releasedAt: null,
      ...(spec.base ? { base: spec.base } : {}),
    };
    await this.write(spec.id, next);
    return this.observed(spec.id, next, spec.kind === 'filesystem' ? mnt : data);
  }

  release(id: string, at: Date): Promise<void> {
    return this.lock.run(id, async () => {
      const meta = await this.read(id);
      if (meta && meta.releasedAt === null) await this.write(id, { ...meta, releasedAt: at.toISOString() });
    });
  }

  async inspect(id: string): Promise<ObservedVolume | null> {
    if (!ID_PATTERN.test(id)) return null;
    const meta = await this.read(id);
    if (!meta) return null;
    const path = meta.kind === 'block' ? this.dataFile(id, 'block') : join(this.dir, id, 'mnt');
    return this.observed(id, meta, meta.kind === 'block' || (await isMounted(path)) ? path : null);
  }

  async list(): Promise<ObservedVolume[]> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    const found = await Promise.all(names.filter((n) => ID_PATTERN.test(n)).map((n) => this.inspect(n)));
    return found.filter((v): v is ObservedVolume => v !== null && v.node === this.node);
  }

  remove(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return Promise.resolve();
    return this.lock.run(id, async () => {
      const mnt = join(this.dir, id, 'mnt');
      if (await isMounted(mnt)) await unmount(mnt);
      await detachLoops(this.dataFile(id, 'filesystem'));
      await rm(join(this.dir, id), { recursive: true, force: true });
    });
  }

  async usage(id: string): Promise<number> {
    const meta = ID_PATTERN.test(id) ? await this.read(id) : null;
    if (!meta) return 0;
    if (meta.kind === 'block') return (await stat(this.dataFile(id, 'block'))).blocks * 512;
    const mnt = join(this.dir, id, 'mnt');
    if (!(await isMounted(mnt))) return (await stat(this.dataFile(id, 'filesystem'))).blocks * 512;
    const s = await statfs(mnt);
    return (s.blocks - s.bfree) * s.bsize;
  }

  /** Makes `file` a qcow2 overlay over the spec's image (grown to its size when larger); the image's size. */
  private async overlay(spec: VolumeSpec, file: string): Promise<number> {
    try {
      const image = await diskImageInfo(spec.base!);
      await createOverlay(image, file, spec.sizeBytes);
      return image.virtualSize;
    } catch (err) {
      if (err instanceof DiskImageError) throw new VolumeSpecError(spec.volume, 'image', err.message);
      throw err;
    }
  }

  private dataFile(id: string, kind: VolumeKind): string {
    return join(this.dir, id, kind === 'filesystem' ? 'data.ext4' : 'disk.qcow2');
  }

  private observed(id: string, meta: VolumeFile, path: string | null): ObservedVolume {
    return { id, node: meta.node, owner: meta.owner, blueprint: meta.blueprint, volume: meta.volume, kind: meta.kind, sizeBytes: meta.sizeBytes, path, releasedAt: meta.releasedAt };
  }

  private async read(id: string): Promise<VolumeFile | null> {
    try {
      return JSON.parse(await readFile(join(this.dir, id, 'volume.json'), 'utf8')) as VolumeFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Written whole under a temporary name and renamed: a crash leaves the old file or the new one. */
  private async write(id: string, meta: VolumeFile): Promise<void> {
    const path = join(this.dir, id, 'volume.json');
    await writeFile(`${path}.tmp`, JSON.stringify(meta) + '\n', { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return false;
    throw err;
  });
}
