// Release bundles of this tree for upgrade tests: one built as zone release build does,
// and variants of it (another version, a file or two changed: an appliance that exits
// at start, a failing migration, ...) written from its manifest without collecting and
// hashing the whole tree again, signed with the given key.
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { writeBundle } from '../../appliance/release/bundle.ts';
import { MANIFEST_ENTRY, type SignedRelease } from '../../appliance/release/manifest.ts';
import { signRelease } from '../../appliance/release/sign.ts';
import type { SigningKeyPair } from '../../lib/ed25519.ts';
import { buildRelease, releaseOfTree } from '../../cli/release/build.ts';

export const TREE = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** Builds the bundle of this tree at `version` (unsigned) to `out`. */
export function buildTreeRelease(out: string, version: string): Promise<SignedRelease> {
  return buildRelease({ root: TREE, out, version });
}

/** The (unsigned) release of this tree at `version`, without writing its bundle: a base for variantBundle. */
export async function treeRelease(version: string): Promise<SignedRelease> {
  return (await releaseOfTree({ root: TREE, version })).release;
}

/**
 * Writes to `out` the bundle of `base` at `version` with `edits` (path -> new text from
 * the old), signed by `key` unless null (and by `cosigners`). `patch` changes the manifest
 * after (storeSchema, rollback, engines); `tamper` changes file bytes after signing.
 * `manifestOnly`: the files are left out (in a second, not the ten a whole bundle takes),
 * for a bundle a node refuses from its manifest alone, before it reads any file. `only`:
 * the files kept (and the ones edited), for a release that never gets past its start.
 */
export async function variantBundle(out: string, base: SignedRelease, options: {
  version: string; key: SigningKeyPair | null; cosigners?: SigningKeyPair[]; edits?: Record<string, (text: string) => string>;
  patch?: Partial<SignedRelease['manifest']>; tamper?: Record<string, (text: string) => string>; manifestOnly?: boolean; only?: RegExp;
}): Promise<SignedRelease> {
  const replaced = new Map<string, Buffer>();
  const pkg = JSON.parse(readFileSync(`${TREE}/package.json`, 'utf8')) as { version: string };
  replaced.set('package.json', Buffer.from(JSON.stringify({ ...pkg, version: options.version }, null, 2) + '\n'));
  for (const [path, edit] of Object.entries(options.edits ?? {})) replaced.set(path, Buffer.from(edit(readFileSync(`${TREE}/${path}`, 'utf8'))));
  const kept = base.manifest.files.filter((f) => !options.only || options.only.test(f.path) || replaced.has(f.path));
  const files = kept.map((f) => {
    const bytes = replaced.get(f.path);
    return bytes ? { ...f, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } : f;
  });
  let release: SignedRelease = { manifest: { ...base.manifest, version: options.version, files, ...options.patch } };
  for (const key of [...(options.key ? [options.key] : []), ...(options.cosigners ?? [])]) release = signRelease(release, key.secretKey);
  if (options.manifestOnly) {
    const pack = tar.pack();
    const manifest = Buffer.from(JSON.stringify(release, null, 1) + '\n');
    pack.entry({ name: MANIFEST_ENTRY, size: manifest.length, mode: 0o644 }, manifest);
    pack.finalize();
    await pipeline(pack, createGzip(), createWriteStream(out));
    return release;
  }
  for (const [path, edit] of Object.entries(options.tamper ?? {})) replaced.set(path, Buffer.from(edit(readFileSync(`${TREE}/${path}`, 'utf8'))));
  await writeBundle(out, release, TREE, replaced);
  return release;
}
