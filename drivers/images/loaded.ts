// What a driver loaded onto the node from the grid's image store, and when a blueprint of
// this node last pinned it: one small file per digest. The node's collector removes only
// what is recorded here, so an image someone loaded by hand (zone/busybox, a `docker
// load`) is never its to remove, even when no blueprint names it.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalImage } from '../contract.ts';

const RECORD = /^([0-9a-f]{64})\.json$/;

interface Record { usedAtMs: number }

export class LoadedImages {
  constructor(private readonly dir: string) {}

  /** `digest` was loaded (or found loaded) by the driver at `now`. */
  async record(digest: string, now: Date): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.write(digest, now.getTime());
  }

  async has(digest: string): Promise<boolean> {
    return (await this.read(hexOf(digest))) !== null;
  }

  async list(): Promise<LocalImage[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const rows: LocalImage[] = [];
    for (const name of names) {
      const hex = RECORD.exec(name)?.[1];
      const record = hex ? await this.read(hex) : null;
      if (hex && record) rows.push({ digest: `sha256:${hex}`, usedAtMs: record.usedAtMs });
    }
    return rows;
  }

  async markUsed(digests: ReadonlySet<string>, now: Date): Promise<void> {
    for (const image of await this.list()) if (digests.has(image.digest)) await this.write(image.digest, now.getTime());
  }

  async forget(digest: string): Promise<void> {
    await rm(join(this.dir, `${hexOf(digest)}.json`), { force: true });
  }

  private async read(hex: string): Promise<Record | null> {
    const text = await readFile(join(this.dir, `${hex}.json`), 'utf8').catch(() => null);
    if (text === null) return null;
    try {
      const record = JSON.parse(text) as Partial<Record>;
      return typeof record.usedAtMs === 'number' ? { usedAtMs: record.usedAtMs } : null;
    } catch {
      return null;
    }
  }

  /** Written beside, then renamed: a crash leaves the old record or the new one. */
  private async write(digest: string, usedAtMs: number): Promise<void> {
    const path = join(this.dir, `${hexOf(digest)}.json`);
    await writeFile(`${path}.tmp`, JSON.stringify({ usedAtMs } satisfies Record), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}

function hexOf(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not an image digest: ${JSON.stringify(digest)}`);
  return hex;
}

/**
 * The record of images loaded into the node's dockerd from the grid: one for the node,
 * kept in the drivers' folder, since the docker and libvirt drivers both load there.
 */
export function dockerdLoads(driversDir: string): LoadedImages {
  return new LoadedImages(join(driversDir, 'images', 'dockerd'));
}
