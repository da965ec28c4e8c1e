// Pulls from the node config's registries, in order, with their sealed credentials
// opened at the pull. A pinned image (`name@sha256:D`, D its image ID) is pulled by its
// name and kept only when what came is D: dockerd checks a manifest's digest, not the
// image ID Zone pins, so the check is ours. Progress goes to the workload's events; no
// message here ever holds a password (dockerd's are scrubbed of it, to be sure).
import type Docker from 'dockerode';
import type { PinnedImage } from '../../blueprints/image-ref.ts';
import { WorkloadSpecError, type RegistryAccess } from '../contract.ts';
import type { KeyedLock } from '../keyed-lock.ts';
import { dockerMessageOf, statusCodeOf } from './errors.ts';
import { isPresent, splitTag } from './images.ts';
import { PullProgress, type PullEvent } from './pull-progress.ts';

/** Shortest time between two progress lines of one pull. */
const PROGRESS_INTERVAL_MS = 1000;
/** A pull that gives no progress line for this long is given up (a registry that accepts and never answers). */
const DEFAULT_STALL_MS = 120_000;

export interface RegistryPullContext {
  docker: Docker;
  registries: readonly RegistryAccess[];
  /** By reference: one pull (and check of what it brought) of a reference at a time. */
  pulls: KeyedLock;
  clock?: () => number;
  /** How long a pull may go without a progress line (default 2 min). */
  stallMs?: number;
}

/** Where `name` is looked for: the registry it names (when it names one), else each registry in order. */
export function registryCandidates(name: string, registries: readonly RegistryAccess[]): { registry: RegistryAccess; reference: string }[] {
  const { repo, tag } = splitTag(name);
  const host = registryHostOf(repo);
  if (host !== null) return registries.filter((r) => r.host === host).slice(0, 1).map((registry) => ({ registry, reference: `${repo}:${tag}` }));
  return registries.map((registry) => ({ registry, reference: `${[registry.host, registry.namespace, repo].filter(Boolean).join('/')}:${tag}` }));
}

/** The registry host a repository names (`registry.local:5000/app`), or null (`zone/busybox`). */
export function registryHostOf(repo: string): string | null {
  const first = repo.split('/')[0] ?? '';
  return repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : null;
}

/** Whether dockerd's image came from one of the registries (a repo digest there): anyone's on this node to run. */
export function pulledFromRegistry(repoDigests: readonly string[] | undefined, registries: readonly RegistryAccess[]): boolean {
  return (repoDigests ?? []).some((d) => registries.some((r) => d.startsWith(`${r.host}/`)));
}

/** Makes `name` (not pinned) present: on the node already, or pulled from a registry. */
export async function ensureNamedImage(ctx: RegistryPullContext, workload: string, name: string, progress: (line: string) => void): Promise<void> {
  if (await isPresent(ctx.docker, name)) return;
  await pullNamed(ctx, workload, name, progress);
}

/** Pulls `name` (not pinned) from the first registry that has it and tags it `name`, or throws WorkloadSpecError saying why not. */
async function pullNamed(ctx: RegistryPullContext, workload: string, name: string, progress: (line: string) => void): Promise<void> {
  const failures: string[] = [];
  for (const { registry, reference } of candidatesOrFail(ctx, workload, name)) {
    const pulled = await pull(ctx, registry, reference, progress).catch(notPulled(failures, registry));
    if (!pulled) continue;
    if (reference !== name) await ctx.docker.getImage(reference).tag(splitTag(name));
    return;
  }
  throw new WorkloadSpecError(workload, 'image', `image ${name} is not on this node and no registry gave it: ${failures.join('; ')}`);
}

/**
 * Pulls pinned `image` by its name from the first registry whose image is the pinned
 * one; WorkloadSpecError `image digest mismatch` when a registry had the name but not
 * that image (nothing is run), or saying why no registry gave it. `missing`: why it was
 * not on the node or in the grid, to start the message with.
 */
export async function pullPinned(ctx: RegistryPullContext, workload: string, image: PinnedImage, missing: string, progress: (line: string) => void): Promise<void> {
  const failures: string[] = [];
  const mismatches: string[] = [];
  for (const { registry, reference } of candidatesOrFail(ctx, workload, `${image.name}@${image.digest}`, image.name)) {
    const pulled = await pull(ctx, registry, reference, progress).catch(notPulled(failures, registry));
    if (!pulled) continue;
    if (pulled.id === image.digest) return;
    const manifest = pulled.repoDigests.some((d) => d.endsWith(`@${image.digest}`))
      ? ` (${image.digest} is the digest of its manifest; a blueprint pins the image ID: docker image inspect --format '{{.Id}}')`
      : '';
    mismatches.push(`${registry.host} has ${reference} as ${pulled.id}${manifest}`);
  }
  const pinned = `${image.name}@${image.digest}`;
  if (mismatches.length > 0) throw new WorkloadSpecError(workload, 'image', `image digest mismatch: ${pinned}: ${[...mismatches, ...failures].join('; ')}; not run`);
  throw new WorkloadSpecError(workload, 'image', `image ${pinned} ${missing}, and no registry gave it: ${failures.join('; ')}`);
}

function candidatesOrFail(ctx: RegistryPullContext, workload: string, what: string, name = what): { registry: RegistryAccess; reference: string }[] {
  const candidates = registryCandidates(name, ctx.registries);
  if (candidates.length > 0) return candidates;
  const host = registryHostOf(splitTag(name).repo);
  throw new WorkloadSpecError(workload, 'image', host !== null
    ? `image ${what} names registry ${host}, which is not among this node's registries (${ctx.registries.map((r) => r.host).join(', ')})`
    : `image ${what} is not on this node and the node config lists no registries (push it with \`zone image push\` and pin its digest, or list a registry)`);
}

/** Records why `registry` did not give the image, for the message; rethrows what is not a failed pull. */
function notPulled(failures: string[], registry: RegistryAccess): (err: unknown) => null {
  return (err) => {
    if (!(err instanceof PullFailure)) throw err;
    failures.push(`${registry.host}: ${err.message}`);
    return null;
  };
}

/** A pull dockerd refused or could not finish (its message, scrubbed). */
class PullFailure extends Error {}

/** Pulls `reference` with `registry`'s credentials; what dockerd now has under it. */
async function pull(ctx: RegistryPullContext, registry: RegistryAccess, reference: string, progress: (line: string) => void): Promise<{ id: string; repoDigests: string[] }> {
  let credentials: { username: string; password: string } | null;
  try {
    credentials = registry.credentials();
  } catch (err) {
    // A password that does not open is this registry's failure; the next one may still have the image.
    throw new PullFailure((err as Error).message);
  }
  const scrub = (message: string) => (credentials?.password ? message.split(credentials.password).join('***') : message);
  return ctx.pulls.run(reference, async () => {
    const now = ctx.clock ?? Date.now;
    const started = now();
    const meter = new PullProgress(`pulling ${reference}`, PROGRESS_INTERVAL_MS);
    progress(`pulling ${reference} from registry ${registry.host}${credentials ? ` as ${credentials.username}` : ''}`);
    // Aborting the request to dockerd cancels its pull.
    const stallMs = ctx.stallMs ?? DEFAULT_STALL_MS;
    const stalled = new AbortController();
    let timer = setTimeout(() => stalled.abort(), stallMs);
    try {
      const options = { abortSignal: stalled.signal, ...(credentials ? { authconfig: { ...credentials, serveraddress: registry.host } } : {}) };
      const stream = await ctx.docker.pull(reference, options);
      await new Promise<void>((resolve, reject) => {
        ctx.docker.modem.followProgress(stream, (err: Error | null, output: (PullEvent & { error?: unknown })[] | undefined) => {
          const failed = output?.find((line) => line.error !== undefined);
          if (err || failed) reject(err ?? new PullFailure(String(failed?.error)));
          else resolve();
        }, (event: PullEvent) => {
          clearTimeout(timer);
          timer = setTimeout(() => stalled.abort(), stallMs);
          const line = meter.update(event, now());
          if (line) progress(line);
        });
      });
    } catch (err) {
      if (stalled.signal.aborted) throw new PullFailure(`no progress for ${Math.round(stallMs / 1000)} s: given up (${meter.summary()})`);
      // dockerd itself unreachable: the engine's trouble, not the registry's.
      if (statusCodeOf(err) === undefined && !(err instanceof PullFailure)) throw err;
      // docker-modem's "(HTTP code 500) server error - " says nothing dockerd's own words do not.
      throw new PullFailure(scrub(dockerMessageOf(err)).replace(/^\(HTTP code \d+\) [a-z ]+ - /, '').trim());
    } finally {
      clearTimeout(timer);
    }
    const info = await ctx.docker.getImage(reference).inspect();
    progress(`pulled ${reference} (${info.Id}) in ${((now() - started) / 1000).toFixed(1)} s: ${meter.summary()}`);
    return { id: info.Id, repoDigests: info.RepoDigests ?? [] };
  });
}
