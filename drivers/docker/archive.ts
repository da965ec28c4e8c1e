// An image archive as `docker save` writes it (manifest.json, the config, one tar per
// layer; Docker 25+ writes the same inside an OCI layout, blobs/sha256/HEX): read once,
// as a stream, and checked whole before anything is stored or loaded. Its digest is the
// sha256 of its config, the image ID Docker gives it; the config lists the sha256 of
// every layer (rootfs.diff_ids), and every blob is named by its own sha256, so one byte
// changed anywhere that matters is found here.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export interface ImageArchive {
  /** `sha256:HEX` of the config: the image ID. */
  digest: string;
  /** Bytes of the archive. */
  size: number;
  /** The names it was saved with (`repo:tag`). */
  repoTags: string[];
}

/** What is wrong with an archive, said for its uploader. */
export class ImageArchiveError extends Error {
  readonly code = 'IMAGE_ARCHIVE';
  constructor(reason: string) {
    super(`image archive: ${reason}`);
    this.name = 'ImageArchiveError';
  }
}

/** Small files kept whole (manifest.json, index.json, configs); anything larger is only hashed. */
const MAX_JSON_BYTES = 1024 * 1024;
/** Small files kept in all: an archive of many small files must not fill the memory. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;
const MAX_ENTRIES = 10_000;
const BLOB = /^blobs\/sha256\/([0-9a-f]{64})$/;
const LEGACY_CONFIG = /^([0-9a-f]{64})\.json$/;

/** A file's sha256, and its bytes when it was kept (`skipped`: small, but past MAX_KEPT_BYTES). */
interface Entry { sha256: string; bytes: Buffer | null; skipped?: boolean }

/** Reads `source` (a tar) to its end and returns the image it holds, or throws ImageArchiveError. */
export async function readImageArchive(source: Readable): Promise<ImageArchive> {
  const entries = new Map<string, Entry>();
  const links = new Map<string, string>();
  let size = 0;
  let kept = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      done(null, chunk);
    },
  });
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const name = normal(entry.header.name);
      if (entries.size + links.size >= MAX_ENTRIES) throw new ImageArchiveError(`more than ${MAX_ENTRIES} entries`);
      if (entry.header.type === 'symlink' || entry.header.type === 'link') {
        // The legacy format links a layer saved twice to its first copy.
        const target = entry.header.linkname ?? '';
        links.set(name, entry.header.type === 'symlink' ? normal(join(dirOf(name), target)) : normal(target));
      } else if (entry.header.type === 'file') {
        const hash = createHash('sha256');
        const small = (entry.header.size ?? Infinity) <= MAX_JSON_BYTES;
        const keep = small && kept + (entry.header.size ?? 0) <= MAX_KEPT_BYTES;
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          hash.update(chunk);
          if (keep) chunks.push(chunk);
        }
        if (keep) kept += entry.header.size ?? 0;
        entries.set(name, { sha256: hash.digest('hex'), bytes: keep ? Buffer.concat(chunks) : null, skipped: small && !keep });
      } else {
        entry.resume();
      }
    }
  })();
  try {
    await Promise.all([pipeline(source, counted, extract), reading]);
  } catch (err) {
    if (err instanceof ImageArchiveError) throw err;
    throw new ImageArchiveError(`not a readable tar (${(err as Error).message})`);
  }
  const resolve = (name: string): Entry | undefined => {
    let current = normal(name);
    for (let hops = 0; hops < 8 && links.has(current); hops++) current = links.get(current)!;
    return entries.get(current);
  };
  for (const [name, entry] of entries) {
    const blob = BLOB.exec(name)?.[1];
    if (blob && blob !== entry.sha256) throw new ImageArchiveError(`${name} does not match its name (its content has sha256 ${entry.sha256})`);
  }
  const manifest = parseJson(resolve('manifest.json'), 'manifest.json') as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[];
  if (!Array.isArray(manifest) || manifest.length !== 1) throw new ImageArchiveError('manifest.json must list exactly one image (save one image per archive)');
  const [image] = manifest as [{ Config?: unknown; RepoTags?: unknown; Layers?: unknown }];
  if (typeof image.Config !== 'string') throw new ImageArchiveError('manifest.json: Config is missing');
  const configEntry = resolve(image.Config);
  const config = parseJson(configEntry, image.Config) as { rootfs?: { diff_ids?: unknown } };
  const named = BLOB.exec(normal(image.Config))?.[1] ?? LEGACY_CONFIG.exec(normal(image.Config))?.[1];
  if (named !== configEntry!.sha256) throw new ImageArchiveError(`the config ${image.Config} does not match its name (its content has sha256 ${configEntry!.sha256})`);
  const layers = Array.isArray(image.Layers) ? image.Layers : [];
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  if (layers.length !== diffIds.length) throw new ImageArchiveError(`manifest.json lists ${layers.length} layers, the config ${diffIds.length}`);
  layers.forEach((layer, i) => {
    const entry = typeof layer === 'string' ? resolve(layer) : undefined;
    if (!entry) throw new ImageArchiveError(`layer ${i} (${String(layer)}) is not in the archive`);
    if (`sha256:${entry.sha256}` !== diffIds[i]) {
      throw new ImageArchiveError(`layer ${i} (${String(layer)}) has sha256:${entry.sha256}, the config says ${String(diffIds[i])} (changed, or compressed: save it with docker save)`);
    }
  });
  const repoTags = Array.isArray(image.RepoTags) ? image.RepoTags.filter((t): t is string => typeof t === 'string') : [];
  return { digest: `sha256:${configEntry!.sha256}`, size, repoTags };
}

function parseJson(entry: Entry | undefined, name: string): unknown {
  if (!entry) throw new ImageArchiveError(`${name} is missing (is it a docker save archive?)`);
  if (entry.skipped) throw new ImageArchiveError(`${name} comes after more than ${MAX_KEPT_BYTES} bytes of other small files`);
  if (!entry.bytes) throw new ImageArchiveError(`${name} is larger than ${MAX_JSON_BYTES} bytes`);
  try {
    return JSON.parse(entry.bytes.toString('utf8'));
  } catch {
    throw new ImageArchiveError(`${name} is not JSON`);
  }
}

/** A tar path without `./` and with `..` resolved, as a key. */
function normal(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function join(dir: string, name: string): string {
  return name.startsWith('/') ? name : `${dir}/${name}`;
}
