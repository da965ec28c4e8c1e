// A release bundle on disk and on the wire: a gzipped tar whose first entry is the
// signed manifest (zone-release.json) and whose other entries are exactly the files it
// lists. Unpacking reads it once, as a stream: the manifest is checked (by the caller's
// `accept`) before any file is written, and every file is hashed as it is written and
// compared with its digest, so an altered file, one missing or one not listed refuses
// the whole bundle.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { ZoneError } from '../../lib/errors.ts';
import { MANIFEST_ENTRY, MAX_FILES, validateSignedRelease, type SignedRelease } from './manifest.ts';

const MAX_MANIFEST_BYTES = 32 * 1024 * 1024;
/** The most an unpacked release may hold (sources and dependencies are ~150 MiB). */
export const MAX_UNPACKED_BYTES = 4 * 2 ** 30;

/**
 * Writes a bundle of `release` to `out`, reading each listed file from `root` unless
 * `replaced` holds its bytes (taken as given). A file read that no longer matches its
 * manifest entry (changed while the release was built) is refused, naming it.
 */
export async function writeBundle(out: string, release: SignedRelease, root: string, replaced = new Map<string, Buffer>()): Promise<void> {
  await writeEntries(out, release, async (pack) => {
    for (const file of release.manifest.files) {
      const given = replaced.get(file.path);
      const bytes = given ?? await readFile(join(root, file.path));
      if (!given && (bytes.length !== file.size || createHash('sha256').update(bytes).digest('hex') !== file.sha256)) {
        throw new ZoneError('CONFLICT', `${file.path} changed while the release was built (it no longer matches its manifest entry): build again`, '/manifest/files');
      }
      await new Promise<void>((resolve, reject) => pack.entry({ name: file.path, size: bytes.length, mode: file.executable ? 0o755 : 0o644, mtime: new Date(0) }, bytes, (err) => (err ? reject(err) : resolve())));
    }
  });
}

/** Writes `out` as a copy of the bundle `from` with `release` as its manifest (the files are kept byte for byte). */
export async function rewriteManifest(from: string, out: string, release: SignedRelease): Promise<void> {
  await writeEntries(out, release, async (pack) => {
    const extract = tar.extract();
    const reading = (async () => {
      let first = true;
      for await (const entry of extract) {
        if (first) {
          first = false;
          entry.resume();
          continue;
        }
        await addEntry(pack, entry.header.name, entry.header.size ?? 0, ((entry.header.mode ?? 0) & 0o100) !== 0, entry as unknown as NodeJS.ReadableStream);
      }
    })();
    await Promise.all([pipeline(createReadStream(from), createGunzip(), extract), reading]);
  });
}

async function writeEntries(out: string, release: SignedRelease, files: (pack: tar.Pack) => Promise<void>): Promise<void> {
  const pack = tar.pack();
  const writing = pipeline(pack, createGzip({ level: 1 }), createWriteStream(out, { mode: 0o644 }));
  // Awaited below; a failure meanwhile (a file that changed size while read) is not left unhandled.
  writing.catch(() => undefined);
  const manifest = Buffer.from(JSON.stringify(release, null, 1) + '\n');
  pack.entry({ name: MANIFEST_ENTRY, size: manifest.length, mode: 0o644 }, manifest);
  await files(pack);
  pack.finalize();
  await writing;
}

async function addEntry(pack: tar.Pack, name: string, size: number, executable: boolean | undefined, source: NodeJS.ReadableStream): Promise<void> {
  const sink = pack.entry({ name, size, mode: executable ? 0o755 : 0o644, mtime: new Date(0) });
  await pipeline(source, sink as unknown as Writable);
}

/** The signed manifest of the bundle at `path` (its first entry), read without unpacking the rest. */
export async function readBundleManifest(path: string): Promise<SignedRelease> {
  let found: SignedRelease | null = null;
  const extract = tar.extract();
  const source = createReadStream(path);
  const reading = (async () => {
    for await (const entry of extract) {
      found = await readManifestEntry(entry);
      break;
    }
  })();
  await pipeline(source, createGunzip(), extract).catch(() => undefined);
  await reading;
  source.destroy();
  if (!found) throw new ZoneError('INVALID', `${path}: not a release bundle (no ${MANIFEST_ENTRY} first)`);
  return found;
}

/** A tar entry as tar-stream's extract yields it. */
type TarEntry = AsyncIterable<unknown> & { header: { name: string; size?: number } };

async function readManifestEntry(entry: TarEntry): Promise<SignedRelease> {
  if (entry.header.name !== MANIFEST_ENTRY) throw new ZoneError('INVALID', `release bundle: its first entry must be ${MANIFEST_ENTRY}, not ${entry.header.name}`, '/');
  if ((entry.header.size ?? 0) > MAX_MANIFEST_BYTES) throw new ZoneError('TOO_LARGE', `release bundle: ${MANIFEST_ENTRY} is larger than ${MAX_MANIFEST_BYTES} bytes`, '/');
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ZoneError('INVALID', `release bundle: ${MANIFEST_ENTRY} is not JSON`, '/');
  }
  return validateSignedRelease(value);
}

/**
 * Unpacks the bundle `source` into `dir` (which must not exist yet). `accept` sees the
 * manifest before any file is written and throws to refuse it. Returns the manifest.
 * `maxBytes` bounds the compressed bundle read from `source`.
 */
export async function unpackBundle(source: Readable, dir: string, accept: (release: SignedRelease) => void, maxBytes: number): Promise<SignedRelease> {
  let release: SignedRelease | null = null;
  let read = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      read += chunk.length;
      if (read > maxBytes) done(new ZoneError('TOO_LARGE', `release bundle: larger than ${maxBytes} bytes`, '/'));
      else done(null, chunk);
    },
  });
  const extract = tar.extract();
  const reading = (async () => {
    const written = new Set<string>();
    let unpacked = 0;
    for await (const entry of extract) {
      if (!release) {
        release = await readManifestEntry(entry);
        accept(release);
        if (release.manifest.files.reduce((sum, f) => sum + f.size, 0) > MAX_UNPACKED_BYTES) throw new ZoneError('TOO_LARGE', `release bundle: its files hold more than ${MAX_UNPACKED_BYTES} bytes`, '/manifest/files');
        await mkdir(dir, { recursive: false, mode: 0o755 });
        continue;
      }
      const { manifest } = release as SignedRelease;
      const name = entry.header.name;
      const index = manifest.files.findIndex((f) => f.path === name);
      const file = manifest.files[index];
      if (!file || entry.header.type !== 'file') throw new ZoneError('SIGNATURE', `release bundle: ${name} is not a file its signed manifest lists`, '/');
      if (written.has(name)) throw new ZoneError('INVALID', `release bundle: ${name} appears twice`, '/');
      if (written.size >= MAX_FILES) throw new ZoneError('TOO_LARGE', `release bundle: more than ${MAX_FILES} files`, '/');
      if ((entry.header.size ?? 0) !== file.size) throw new ZoneError('SIGNATURE', `release bundle: ${name} has ${entry.header.size ?? 0} bytes, its signed manifest says ${file.size} (tampered)`, `/manifest/files/${index}`);
      unpacked += file.size;
      const target = join(dir, name);
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      const handle = await open(target, 'wx', file.executable ? 0o755 : 0o644);
      const hash = createHash('sha256');
      const hashing = new Transform({ transform(chunk: Buffer, _e, done) { hash.update(chunk); done(null, chunk); } });
      await pipeline(entry as unknown as NodeJS.ReadableStream, hashing, handle.createWriteStream());
      if (hash.digest('hex') !== file.sha256) throw new ZoneError('SIGNATURE', `release bundle: ${name} does not match the digest in its signed manifest (tampered)`, `/manifest/files/${index}`);
      written.add(name);
    }
    if (!release) throw new ZoneError('INVALID', `release bundle: empty (no ${MANIFEST_ENTRY})`, '/');
    const missing = (release as SignedRelease).manifest.files.find((f) => !written.has(f.path));
    if (missing) throw new ZoneError('SIGNATURE', `release bundle: ${missing.path} is listed in its signed manifest but missing`, '/manifest/files');
    return unpacked;
  })();
  const streaming = pipeline(source, counted, createGunzip(), extract);
  // Whichever fails first stops the other; the refusal told is the most telling one (a ZoneError, the reader's first).
  const results = await Promise.allSettled([
    reading.catch((err: unknown) => {
      source.destroy();
      throw err;
    }),
    streaming.catch((err: unknown) => {
      extract.destroy(err as Error);
      throw err;
    }),
  ]);
  const reasons = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  if (reasons.length) {
    throw reasons.find((e) => e instanceof ZoneError) ?? new ZoneError('INVALID', `release bundle: not a gzipped tar (${reasons[0]!.message})`, '/');
  }
  return release as unknown as SignedRelease;
}
