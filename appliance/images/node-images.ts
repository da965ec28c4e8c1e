// The image store as the appliance opens it: on its own connection to the node's
// nats-server, once the pseudokernel runs; the drivers get a source that asks it (and
// fails, to be retried, while it is not open).
import { join } from 'node:path';
import type { Logger } from 'pino';
import { pinnedImage } from '../../blueprints/image-ref.ts';
import { actsFor, type TrustPolicy } from '../../blueprints/policy.ts';
import type { ImageSource, LocalImages } from '../../drivers/contract.ts';
import type { NodeConfig } from '../config.ts';
import { isLive } from '../engine/desired.ts';
import type { Pseudokernel } from '../pseudokernel/pseudokernel.ts';
import type { StoredBlueprint } from '../store.ts';
import { GridImages } from './grid-images.ts';
import { ImageService } from './service.ts';

/** The images live blueprints pin, by owner. */
export function pinnedImagesOf(blueprints: readonly StoredBlueprint[], now: Date): { owner: string; digest: string }[] {
  const seen = new Map<string, { owner: string; digest: string }>();
  for (const b of blueprints) {
    if (!isLive(b, now)) continue;
    for (const w of b.document.workloads ?? []) {
      const pinned = pinnedImage(w.image);
      if (pinned) seen.set(`${b.owner}|${pinned.digest}`, { owner: b.owner, digest: pinned.digest });
    }
  }
  return [...seen.values()];
}

export interface NodeImagesOptions {
  node: string;
  config: NodeConfig;
  trustPolicy: TrustPolicy;
  pseudokernel: Pseudokernel;
  blueprints(): readonly StoredBlueprint[];
  /** What the drivers loaded onto the node from the grid. */
  localImages: readonly LocalImages[];
  logger: Logger;
  clock?: () => Date;
}

/**
 * The node's image service and its collector, on a connection of its own; null when the
 * pseudokernel does not run. The store itself is opened on first use.
 */
export async function openNodeImages(o: NodeImagesOptions): Promise<{ service: ImageService; close(): Promise<void> } | null> {
  if (!o.pseudokernel.available) return null;
  const nc = await o.pseudokernel.server.connect(`zone-${o.node}-images`);
  const cluster = o.config.nats.cluster;
  const replicas = cluster ? Math.min(3, cluster.routes.length + 1) : 1;
  const openStore = () => GridImages.open(nc, { replicas, maxBytes: o.config.limits.imageStoreBytes }).catch((err: unknown) => {
    o.logger.warn({ err }, 'the grid\'s image store could not be opened (yet); tried again at its next use');
    throw err;
  });
  const now = () => o.clock?.() ?? new Date();
  const service = new ImageService({
    node: o.node, uploadsDir: join(o.config.dataDir, 'image-uploads'),
    ownerImageBytes: o.config.limits.ownerImageBytes, imageStoreBytes: o.config.limits.imageStoreBytes,
    acceptsOwner: (owner) => o.trustPolicy.signers.some((signer) => actsFor(signer, owner)),
    gcGraceMs: o.config.images.gcGraceMs, pinned: () => pinnedImagesOf(o.blueprints(), now()), localImages: o.localImages, openStore, logger: o.logger,
    ...(o.clock ? { clock: o.clock } : {}),
  });
  service.start();
  return { service, close: async () => { await service.close(); await nc.close(); } };
}

/** A source for the drivers that asks `current()`, which is there once the store is open. */
export function lazyImageSource(current: () => ImageSource | null): ImageSource {
  const source = () => {
    const found = current();
    if (!found) throw new Error('the grid\'s image store is not open on this node (the pseudokernel is not running)');
    return found;
  };
  return {
    kindOf: (owner, digest) => source().kindOf(owner, digest),
    fetch: (owner, digest, path) => source().fetch(owner, digest, path),
  };
}
