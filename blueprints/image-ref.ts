// Image references: `name` (an image already on the node, or a VM disk path) or
// `name@sha256:HEX` pinned to its content (the image ID Docker gives the config's
// sha256; the sha256 of a VM disk file). A pinned image is fetched from the grid's
// image store when the node lacks it, and the blueprint's signature covers the digest.

/** `name` or `name@sha256:<64 hex>`; linear to match (no nested quantifiers). */
export const IMAGE_PATTERN = '^[^@]+(@sha256:[0-9a-f]{64})?$';

const PINNED = /^([^@]+)@(sha256:[0-9a-f]{64})$/;
export const DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';

export interface PinnedImage {
  name: string;
  /** `sha256:<64 hex>`. */
  digest: string;
}

/** The name and digest of a pinned reference; null for one without a digest. */
export function pinnedImage(reference: string): PinnedImage | null {
  const m = PINNED.exec(reference);
  return m ? { name: m[1]!, digest: m[2]! } : null;
}

/** A warning for every workload whose image is not pinned: it runs only where someone put that image by hand. */
export function unpinnedImageWarnings(workloads: readonly { name: string; image: string }[]): { field: string; message: string }[] {
  return workloads.flatMap((w, i) => (pinnedImage(w.image) ? [] : [{
    field: `/workloads/${i}/image`,
    message: `warning: workload ${w.name}: image ${w.image} is not pinned (name@sha256:DIGEST): it runs only on nodes that already have it, and its content is not covered by the signature`,
  }]));
}
