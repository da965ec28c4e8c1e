// Images on the node: whether dockerd has one, and loading archives (`docker load`).
// Pulls from the node config's registries are in registries.ts.
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import type Docker from 'dockerode';
import { statusCodeOf } from './errors.ts';

/** Splits `repo[:tag]` (a `:` inside a registry host is not a tag). */
export function splitTag(reference: string): { repo: string; tag: string } {
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  return colon > slash ? { repo: reference.slice(0, colon), tag: reference.slice(colon + 1) } : { repo: reference, tag: 'latest' };
}

export async function isPresent(docker: Docker, reference: string): Promise<boolean> {
  return (await inspectImage(docker, reference)) !== null;
}

/** dockerd's image `reference`; null when it has none. */
export async function inspectImage(docker: Docker, reference: string): Promise<Docker.ImageInspectInfo | null> {
  try {
    return await docker.getImage(reference).inspect();
  } catch (err) {
    if (statusCodeOf(err) === 404) return null;
    throw err;
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
