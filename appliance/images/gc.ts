// Which images may go: pure, with the time passed in. First the grid's store. An image is
// kept while any node saw a blueprint pin it within the grace period, and for the grace
// period after its push (so that a push has time to be pinned); after that it goes.
// Every node collects, from the uses every node records: a node never removes an image
// another node still uses.

import type { LocalImage } from '../../drivers/contract.ts';

export interface StoredImage {
  /** Its object name (`<owner id>.<digest hex>`). */
  object: string;
  pushedAtMs: number;
}

export interface ImageUse {
  object: string;
  node: string;
  /** When the node last saw it pinned by a live blueprint. */
  atMs: number;
}

/** The objects to remove at `nowMs`. */
export function collectableImages(images: readonly StoredImage[], uses: readonly ImageUse[], nowMs: number, graceMs: number): string[] {
  const lastUse = new Map<string, number>();
  for (const use of uses) lastUse.set(use.object, Math.max(lastUse.get(use.object) ?? -Infinity, use.atMs));
  return images
    .filter((image) => Math.max(image.pushedAtMs, lastUse.get(image.object) ?? -Infinity) + graceMs <= nowMs)
    .map((image) => image.object);
}

/**
 * Which images this node loaded from the grid (into dockerd, its VM image store) it may
 * remove at `nowMs`: those no live blueprint of the node pins now, and none did for the
 * grace period. Only what the node loaded itself is ever offered here.
 */
export function collectableLocalImages(loaded: readonly LocalImage[], pinned: ReadonlySet<string>, nowMs: number, graceMs: number): string[] {
  return loaded.filter((image) => !pinned.has(image.digest) && image.usedAtMs + graceMs <= nowMs).map((image) => image.digest);
}
