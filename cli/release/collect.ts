// What a release of a project tree holds: its sources (the layers of DESIGN.md, the
// scripts and vendor/ with the FUSE binding as built here), package.json (with the
// release's version) and lock, and its production dependencies as npm resolves them
// (`npm ls --omit=dev`), hashed file by file.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, realpath } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ReleaseFile } from '../../appliance/release/manifest.ts';

/** The folders and files of the tree a release holds. */
const SOURCES = ['lib', 'blueprints', 'drivers', 'appliance', 'api', 'cli', 'scripts', 'vendor', 'package.json', 'package-lock.json', 'tsconfig.json'];
/**
 * Never in a release: npm's bin links and caches, and what nothing loads at run time
 * (type declarations, source maps, markdown). Folders named test or doc stay: some
 * packages load code from them (yaml's dist/doc).
 */
const SKIPPED = /(^|\/)(\.git|\.bin|\.cache)(\/|$)|\.(md|map|d\.ts|d\.mts|d\.cts)$/i;

export interface CollectedFile extends ReleaseFile {
  /** Where it is read from. */
  source: string;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

async function walk(root: string, dir: string, prefix: string, out: CollectedFile[], skip: RegExp | null): Promise<void> {
  const stat = await lstat(dir).catch(() => null);
  if (!stat) return;
  if (stat.isFile()) {
    out.push({ path: prefix, source: dir, size: stat.size, sha256: await sha256(dir), ...(stat.mode & 0o100 ? { executable: true } : {}) });
    return;
  }
  if (!stat.isDirectory()) return;
  for (const name of (await readdir(dir)).sort()) {
    const path = `${prefix}/${name}`;
    if (skip?.test(path)) continue;
    await walk(root, join(dir, name), path, out, skip);
  }
}

/** The production dependencies' folders (real paths) and their places under node_modules. */
async function dependencies(root: string): Promise<{ dir: string; path: string }[]> {
  // npm ls exits 1 on a tree it finds untidy (an extraneous package) yet lists it all.
  const stdout = await new Promise<string>((resolve) => {
    execFile('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: root, maxBuffer: 64 * 2 ** 20 }, (_err, out) => resolve(String(out)));
  });
  const modules = await realpath(join(root, 'node_modules'));
  const dirs = [...new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean))];
  const out: { dir: string; path: string }[] = [];
  for (const dir of dirs) {
    const real = await realpath(dir).catch(() => null);
    if (!real || !real.startsWith(modules + '/')) continue;
    out.push({ dir: real, path: `node_modules/${relative(modules, real)}` });
  }
  // A nested package is walked with its parent: keep only the outermost ones.
  return out.filter((d) => !out.some((o) => o !== d && d.path.startsWith(o.path + '/')));
}

/** Every file of the release of the tree at `root`, sorted by path; `packageJson` replaces package.json's bytes. */
export async function collectRelease(root: string, packageJson: Buffer): Promise<CollectedFile[]> {
  const files: CollectedFile[] = [];
  for (const source of SOURCES) {
    if (source === 'package.json') continue;
    await walk(root, join(root, source), source, files, /(^|\/)(\.zone|node_modules)(\/|$)/);
  }
  for (const dep of await dependencies(root)) await walk(root, dep.dir, dep.path, files, SKIPPED);
  const pkg = { path: 'package.json', source: '', size: packageJson.length, sha256: createHash('sha256').update(packageJson).digest('hex') };
  return [...files, pkg].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The tree's package.json with `version` set. */
export async function packageJsonOf(root: string, version?: string): Promise<{ bytes: Buffer; version: string; engines: string }> {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; engines?: { node?: string } };
  if (version) pkg.version = version;
  return { bytes: Buffer.from(JSON.stringify(pkg, null, 2) + '\n'), version: pkg.version, engines: pkg.engines?.node ?? '>=20' };
}
