// Release bundles of this tree for upgrade tests: one built as zone release build does,
// and variants of it (another version, a file or two changed: an appliance that exits
// at start, a failing migration, ...) written from its manifest without collecting and
// hashing the whole tree again, signed with the given key.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeBundle } from '../../appliance/release/bundle.ts';
import type { SignedRelease } from '../../appliance/release/manifest.ts';
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
 * the old), signed by `key` unless null. `patch` changes the manifest after (storeSchema,
 * rollback, engines); `tamper` changes file bytes after signing.
 */
export async function variantBundle(out: string, base: SignedRelease, options: {
  version: string; key: SigningKeyPair | null; edits?: Record<string, (text: string) => string>;
  patch?: Partial<SignedRelease['manifest']>; tamper?: Record<string, (text: string) => string>;
}): Promise<SignedRelease> {
  const replaced = new Map<string, Buffer>();
  const pkg = JSON.parse(readFileSync(`${TREE}/package.json`, 'utf8')) as { version: string };
  replaced.set('package.json', Buffer.from(JSON.stringify({ ...pkg, version: options.version }, null, 2) + '\n'));
  for (const [path, edit] of Object.entries(options.edits ?? {})) replaced.set(path, Buffer.from(edit(readFileSync(`${TREE}/${path}`, 'utf8'))));
  const files = base.manifest.files.map((f) => {
    const bytes = replaced.get(f.path);
    return bytes ? { ...f, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } : f;
  });
  let release: SignedRelease = { manifest: { ...base.manifest, version: options.version, files, ...options.patch } };
  if (options.key) release = signRelease(release, options.key.secretKey);
  for (const [path, edit] of Object.entries(options.tamper ?? {})) replaced.set(path, Buffer.from(edit(readFileSync(`${TREE}/${path}`, 'utf8'))));
  await writeBundle(out, release, TREE, replaced);
  return release;
}
