// zone release build: the bundle of a project tree (its sources, production
// dependencies and an unsigned manifest), ready for zone release sign.
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeBundle } from '../../appliance/release/bundle.ts';
import type { SignedRelease } from '../../appliance/release/manifest.ts';
import { validateSignedRelease } from '../../appliance/release/manifest.ts';
import { collectRelease, packageJsonOf } from './collect.ts';

export interface BuildOptions {
  /** The project tree (default: the one this command runs from). */
  root: string;
  out: string;
  version?: string;
  rollback?: boolean;
}

/** The unsigned release of the tree, as a bundle of it would carry it, and its package.json (the release's version in it). */
export async function releaseOfTree(options: Omit<BuildOptions, 'out'>): Promise<{ release: SignedRelease; packageJson: Buffer }> {
  const pkg = await packageJsonOf(options.root, options.version);
  const files = await collectRelease(options.root, pkg.bytes);
  const { MIGRATIONS } = await import(pathToFileURL(join(options.root, 'appliance/migrations.ts')).href) as { MIGRATIONS: readonly string[] };
  const release = validateSignedRelease({
    manifest: {
      format: 'zone-release-v1', version: pkg.version, ...(options.rollback ? { rollback: true } : {}),
      engines: { node: pkg.engines }, storeSchema: MIGRATIONS.length, builtAt: new Date().toISOString(),
      files: files.map(({ path, sha256, size, executable }) => ({ path, sha256, size, ...(executable ? { executable } : {}) })),
    },
  });
  return { release, packageJson: pkg.bytes };
}

/** Builds the bundle; returns its manifest. */
export async function buildRelease(options: BuildOptions): Promise<SignedRelease> {
  const { release, packageJson } = await releaseOfTree(options);
  const partial = `${options.out}.partial`;
  // package.json is the one file not read from the tree as it is: its version is the release's.
  await writeBundle(partial, release, options.root, new Map([['package.json', packageJson]]));
  await rename(partial, options.out);
  return release;
}
