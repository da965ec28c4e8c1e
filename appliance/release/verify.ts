// Whether a node takes a release: every signature verifies over the manifest, the
// signers trusted for releases reach their threshold, it is newer than what runs (or
// signed as a rollback), this Node runs it and its store schema is not older than the
// node's store. The files themselves are checked against the manifest as they unpack
// (bundle.ts). Each refusal is a ZoneError naming the reason and the field.
import { parsePublicKey, verifyEd25519 } from '../../lib/ed25519.ts';
import { ZoneError } from '../../lib/errors.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { releaseSigningBytes, type SignedRelease } from './manifest.ts';
import { compareVersions, satisfiesEngine } from './versions.ts';

export interface ReleaseContext {
  policy: TrustPolicy;
  /** The version the node runs. */
  running: string;
  /** process.versions.node of the node. */
  nodeVersion: string;
  /** The schema version of the node's store (user_version). */
  storeSchema: number;
}

/** Who signs releases: the policy's `releases` section, else the blueprint signers. */
export function releaseSigners(policy: TrustPolicy): { signers: { key: string; weight: number; label?: string }[]; threshold: number } {
  return policy.releases ?? { signers: policy.signers, threshold: policy.threshold };
}

/** The labels (or keys) of the signers that counted; ZoneError SIGNATURE, POLICY, STALE or CONFLICT otherwise. */
export function verifyRelease(release: SignedRelease, ctx: ReleaseContext): string[] {
  const { manifest } = release;
  const signatures = release.signatures ?? [];
  if (!signatures.length) throw new ZoneError('SIGNATURE', `release ${manifest.version} is not signed (zone release sign --key)`, '/signatures');
  const message = releaseSigningBytes(manifest);
  signatures.forEach((s, i) => {
    if (signatures.findIndex((o) => o.key === s.key) < i) throw new ZoneError('SIGNATURE', `${s.key} signs twice; one signature per key`, `/signatures/${i}/key`);
    if (!verifyEd25519(message, Buffer.from(s.sig, 'base64'), parsePublicKey(s.key, `/signatures/${i}/key`))) {
      throw new ZoneError('SIGNATURE', `signature ${i} by ${s.key} does not verify over this release's manifest (altered after signing?)`, `/signatures/${i}/sig`);
    }
  });
  const { signers, threshold } = releaseSigners(ctx.policy);
  const trusted = new Map(signers.map((s) => [s.key, s]));
  const counted = signatures.flatMap((s) => trusted.get(s.key) ?? []);
  const weight = counted.reduce((sum, s) => sum + s.weight, 0);
  if (weight < threshold) {
    const untrusted = signatures.length - counted.length;
    throw new ZoneError('POLICY', `release ${manifest.version}: trusted signatures weigh ${weight}, the trust policy needs ${threshold} for a release` +
      (untrusted ? ` (${untrusted} signature(s) by keys not trusted for releases count 0)` : ''), '/signatures');
  }
  const order = compareVersions(manifest.version, ctx.running);
  if (order === 0) throw new ZoneError('STALE', `release ${manifest.version} is the version this node runs`, '/manifest/version');
  if (order < 0 && !manifest.rollback) {
    throw new ZoneError('STALE', `release ${manifest.version} is older than the running ${ctx.running}: a downgrade is taken only when signed as a rollback (zone release build --rollback)`, '/manifest/version');
  }
  if (!satisfiesEngine(ctx.nodeVersion, manifest.engines.node)) {
    throw new ZoneError('CONFLICT', `release ${manifest.version} needs Node ${manifest.engines.node}; this node runs Node ${ctx.nodeVersion}`, '/manifest/engines/node');
  }
  if (manifest.storeSchema < ctx.storeSchema) {
    throw new ZoneError('CONFLICT', `release ${manifest.version} knows store schema ${manifest.storeSchema}, this node's store is at ${ctx.storeSchema}: it could not open it`, '/manifest/storeSchema');
  }
  return counted.map((s) => s.label ?? s.key);
}
