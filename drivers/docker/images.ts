// Images without a registry: a local reference is used as it is, a tar file is loaded
// (`docker load`), and a pull happens only when the image is missing and a registry
// is configured.
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import type Docker from 'dockerode';
import { WorkloadSpecError } from '../contract.ts';
import { dockerMessageOf, statusCodeOf } from './errors.ts';

/** True when the reference already names a registry host (`registry.local:5000/app`). */
export function hasRegistryHost(reference: string): boolean {
  const first = reference.split('/')[0] ?? '';
  return reference.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
}

/** The reference to pull from `registry`: one that names its own registry is kept. */
export function pullReference(reference: string, registry: string): string {
  return hasRegistryHost(reference) ? reference : `${registry.replace(/\/+$/, '')}/${reference}`;
}

/** Splits `repo[:tag]` (a `:` inside a registry host is not a tag). */
export function splitTag(reference: string): { repo: string; tag: string } {
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  return colon > slash ? { repo: reference.slice(0, colon), tag: reference.slice(colon + 1) } : { repo: reference, tag: 'latest' };
}

export async function isPresent(docker: Docker, reference: string): Promise<boolean> {
  try {
    await docker.getImage(reference).inspect();
    return true;
  } catch (err) {
    if (statusCodeOf(err) === 404) return false;
    throw err;
  }
}

/** Makes `reference` present locally for `workload`, or throws WorkloadSpecError saying why not. */
export async function ensureImage(docker: Docker, workload: string, reference: string, registry: string | undefined): Promise<void> {
  if (await isPresent(docker, reference)) return;
  if (!registry) {
    throw new WorkloadSpecError(workload, 'image', `image ${reference} not present locally and no registry configured (load it with \`docker load\` or configure a registry)`);
  }
  const source = pullReference(reference, registry);
  try {
    const progress = await docker.pull(source);
    await followProgress(docker, progress);
    if (source !== reference) await docker.getImage(source).tag(splitTag(reference));
  } catch (err) {
    if (statusCodeOf(err) === undefined && !(err instanceof ProgressError)) throw err; // dockerd itself is unreachable
    throw new WorkloadSpecError(workload, 'image', `image ${reference} not present locally and the pull of ${source} failed: ${dockerMessageOf(err)}`);
  }
}

/** Loads an image tar (`docker save` format) and returns the references it brought. */
export async function loadImageFile(docker: Docker, path: string): Promise<string[]> {
  await access(path).catch(() => {
    throw new Error(`image file ${path} cannot be read`);
  });
  const output = await loadImageStream(docker, createReadStream(path));
  return output.flatMap((line) => /^Loaded image(?: ID)?: (.+)$/.exec(String(line.stream ?? '').trim())?.[1] ?? []);
}

/** Loads an image archive from a stream; the progress lines dockerd answered with. */
export async function loadImageStream(docker: Docker, archive: NodeJS.ReadableStream): Promise<{ stream?: unknown; error?: unknown }[]> {
  return followProgress(docker, await docker.loadImage(archive));
}

/** An `{"error": ...}` line in a progress stream: dockerd answered, but the operation failed. */
class ProgressError extends Error {}

async function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<{ stream?: unknown; error?: unknown }[]> {
  const output = await new Promise<{ stream?: unknown; error?: unknown }[]>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, result: { stream?: unknown; error?: unknown }[]) => (err ? reject(err) : resolve(result)));
  });
  const failed = output.find((line) => line.error !== undefined);
  if (failed) throw new ProgressError(String(failed.error));
  return output;
}
