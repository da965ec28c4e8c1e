// A release of the node software: the manifest a bundle carries (what version, which
// Node it needs, which store schema it brings, the digest of every file) and the
// bytes its signatures cover (RFC 8785 after a domain tag of its own, so a release
// signature can never pass for a blueprint's or a token's).
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { canonicalJson } from '../../blueprints/canonical.ts';
import { PublicKey } from '../../blueprints/schema.ts';
import { ZoneError } from '../../lib/errors.ts';

export const RELEASE_DOMAIN_TAG = 'zone-release-v1\n';
/** The manifest's name inside a bundle: always its first entry. */
export const MANIFEST_ENTRY = 'zone-release.json';
export const VERSION_PATTERN = '^(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})$';
/** A file's path in a release: relative, no `.`/`..` segments, no backslashes. */
const FILE_PATH_PATTERN = '^(?!/)(?!.*(^|/)\\.\\.?(/|$))[^\\\\\\u0000]{1,1024}$';
export const MAX_FILES = 100_000;

export const ReleaseFile = Type.Object({
  path: Type.String({ pattern: FILE_PATH_PATTERN }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  size: Type.Integer({ minimum: 0, maximum: 2 ** 31 }),
  executable: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

export const ReleaseManifest = Type.Object({
  format: Type.Literal('zone-release-v1'),
  version: Type.String({ pattern: VERSION_PATTERN, description: 'MAJOR.MINOR.PATCH' }),
  rollback: Type.Optional(Type.Boolean({ description: 'signed as a rollback: a node may install it over a newer version' })),
  engines: Type.Object({ node: Type.String({ minLength: 1, maxLength: 128, description: 'the Node versions it runs on, e.g. ">=20"' }) }, { additionalProperties: false }),
  storeSchema: Type.Integer({ minimum: 1, description: 'the store schema version its migrations bring' }),
  builtAt: Type.String({ maxLength: 64 }),
  files: Type.Array(ReleaseFile, { minItems: 1, maxItems: MAX_FILES }),
}, { additionalProperties: false });

export const SignedRelease = Type.Object({
  manifest: ReleaseManifest,
  signatures: Type.Optional(Type.Array(Type.Object({ key: PublicKey, sig: Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$' }) }, { additionalProperties: false }), { maxItems: 256 })),
}, { additionalProperties: false });

export type ReleaseFile = Static<typeof ReleaseFile>;
export type ReleaseManifest = Static<typeof ReleaseManifest>;
export type SignedRelease = Static<typeof SignedRelease>;

/** The value as a SignedRelease, or ZoneError('INVALID') naming the field; paths listed twice are refused. */
export function validateSignedRelease(value: unknown): SignedRelease {
  const [error] = Value.Errors(SignedRelease, value);
  if (error) throw new ZoneError('INVALID', `release manifest: ${error.path || '/'}: ${error.message.toLowerCase()}`, error.path || '/');
  const release = value as SignedRelease;
  const seen = new Set<string>();
  release.manifest.files.forEach((f, i) => {
    if (seen.has(f.path)) throw new ZoneError('INVALID', `release manifest: ${f.path} is listed twice`, `/manifest/files/${i}/path`);
    seen.add(f.path);
  });
  return release;
}

/** What a release signature covers: the domain tag and RFC 8785 of the manifest. */
export function releaseSigningBytes(manifest: ReleaseManifest): Buffer {
  return Buffer.from(RELEASE_DOMAIN_TAG + canonicalJson(manifest), 'utf8');
}

/** Which release this is, whoever signed it: `sha256:` of its manifest's signing bytes. */
export function releaseDigest(manifest: ReleaseManifest): string {
  return `sha256:${createHash('sha256').update(releaseSigningBytes(manifest)).digest('hex')}`;
}
