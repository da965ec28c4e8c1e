// Receiving a release on a node: the bundle is streamed in, its manifest verified (and
// the whole refused) before any file is written, its files checked against their
// digests as they unpack into a fresh folder, which becomes releases/<version> only once
// complete. Nothing is left behind by a refused bundle, nor, from its next start, by an
// appliance killed while it unpacked one.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { unpackBundle } from './bundle.ts';
import type { SignedRelease } from './manifest.ts';
import { releaseDir, releasesDir, type ReleaseRef } from './state.ts';
import { verifyRelease, type ReleaseContext } from './verify.ts';

/** The largest bundle a node takes (a release is ~40 MiB gzipped). */
export const MAX_BUNDLE_BYTES = 512 * 2 ** 20;

export interface InstalledRelease {
  release: SignedRelease;
  signers: string[];
  ref: ReleaseRef;
}

/**
 * Verifies and unpacks the bundle `source`; ZoneError (SIGNATURE, POLICY, STALE, CONFLICT,
 * INVALID, TOO_LARGE) when refused. `expect` also sees the verified manifest before any
 * file is written, and throws to refuse it (a bundle fetched for a release it is not).
 */
const INCOMING = '.incoming-';
/** The prefix of an uploaded bundle's copy kept for the grid's release store while it is received (node-release.ts). */
export const UPLOAD_COPY = '.upload-';

/** Removes what a killed appliance was unpacking (and its copy of the bundle); only an appliance receives, so at its start nothing else is. Returns how many. */
export async function removeAbandonedIncoming(dataDir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(releasesDir(dataDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const abandoned = names.filter((name) => name.startsWith(INCOMING) || name.startsWith(UPLOAD_COPY));
  for (const name of abandoned) await rm(join(releasesDir(dataDir), name), { recursive: true, force: true });
  return abandoned.length;
}

export async function installRelease(source: Readable, dataDir: string, ctx: ReleaseContext, maxBytes = MAX_BUNDLE_BYTES, expect?: (release: SignedRelease) => void): Promise<InstalledRelease> {
  mkdirSync(releasesDir(dataDir), { recursive: true, mode: 0o700 });
  const incoming = join(releasesDir(dataDir), `${INCOMING}${randomBytes(8).toString('hex')}`);
  let signers: string[] = [];
  try {
    const release = await unpackBundle(source, incoming, (r) => {
      signers = verifyRelease(r, ctx);
      expect?.(r);
    }, maxBytes);
    const dir = releaseDir(dataDir, release.manifest.version);
    // A folder of this version is one an earlier upgrade left (it failed, or was rolled back from): replaced.
    await rm(dir, { recursive: true, force: true });
    await rename(incoming, dir);
    return { release, signers, ref: { version: release.manifest.version, dir } };
  } finally {
    await rm(incoming, { recursive: true, force: true });
  }
}
