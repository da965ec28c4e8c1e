import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readBundleManifest, rewriteManifest, unpackBundle, writeBundle } from '../../../appliance/release/bundle.ts';
import { validateSignedRelease, type SignedRelease } from '../../../appliance/release/manifest.ts';
import { signRelease } from '../../../appliance/release/sign.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-bundle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tree = join(dir, 'tree');
mkdirSync(join(tree, 'api'), { recursive: true });
writeFileSync(join(tree, 'api/main.ts'), 'console.log("v2");\n');
writeFileSync(join(tree, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
const fileOf = (path: string, executable = false) => {
  const bytes = readFileSync(join(tree, path));
  return { path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), ...(executable ? { executable } : {}) };
};
const release: SignedRelease = validateSignedRelease({
  manifest: { format: 'zone-release-v1', version: '0.2.0', engines: { node: '>=20' }, storeSchema: 1, builtAt: '2026-11-30T00:00:00Z', files: [fileOf('api/main.ts'), fileOf('run.sh', true)] },
});
let n = 0;
const out = () => join(dir, `out-${++n}`);
const unpack = (bundle: string, target = out()) => unpackBundle(createReadStream(bundle), target, () => undefined, 2 ** 30).then((r) => ({ r, target }));

t.test('a bundle unpacks to exactly its files, modes kept; signing rewrites only the manifest', async (t) => {
  const bundle = join(dir, 'ok.tar.gz');
  await writeBundle(bundle, release, tree);
  const key = generateSigningKeyPair();
  const signed = signRelease(await readBundleManifest(bundle), key.secretKey);
  await rewriteManifest(bundle, join(dir, 'signed.tar.gz'), signed);
  t.same(await readBundleManifest(join(dir, 'signed.tar.gz')), signed);
  const { r, target } = await unpack(join(dir, 'signed.tar.gz'));
  t.same(r, signed);
  t.equal(readFileSync(join(target, 'api/main.ts'), 'utf8'), 'console.log("v2");\n');
  t.equal(statSync(join(target, 'run.sh')).mode & 0o777, 0o755);
  t.notOk(existsSync(join(target, 'zone-release.json')), 'the manifest is not one of its files');
});

t.test('a file changed after building (tampered) refuses the bundle, naming the file', async (t) => {
  const bundle = join(dir, 'tampered.tar.gz');
  await writeBundle(bundle, release, tree, new Map([['api/main.ts', Buffer.from('console.log("v3");\n')]]));
  await t.rejects(unpack(bundle), { code: 'SIGNATURE', message: /api\/main\.ts does not match the digest in its signed manifest \(tampered\)/, field: '/manifest/files/0' });
});

t.test('a file missing, or one the manifest does not list, refuses the bundle', async (t) => {
  const short = { manifest: { ...release.manifest, files: [release.manifest.files[0]!] } };
  const extra = join(dir, 'extra.tar.gz');
  await writeBundle(extra, release, tree);
  await rewriteManifest(extra, join(dir, 'extra2.tar.gz'), short);
  await t.rejects(unpack(join(dir, 'extra2.tar.gz')), { code: 'SIGNATURE', message: /run\.sh is not a file its signed manifest lists/ });
  const long = { manifest: { ...release.manifest, files: [...release.manifest.files, { ...fileOf('run.sh'), path: 'gone.ts' }] } };
  await rewriteManifest(extra, join(dir, 'missing.tar.gz'), long);
  await t.rejects(unpack(join(dir, 'missing.tar.gz')), { code: 'SIGNATURE', message: /gone\.ts is listed in its signed manifest but missing/ });
});

t.test('the caller refuses on the manifest before any file is written; bounds and garbage are refused', async (t) => {
  const bundle = join(dir, 'ok.tar.gz');
  const target = out();
  await t.rejects(unpackBundle(createReadStream(bundle), target, () => { throw new Error('refused by policy'); }, 2 ** 30), /refused by policy/);
  t.notOk(existsSync(target));
  await t.rejects(unpackBundle(createReadStream(bundle), out(), () => undefined, 100), { code: 'TOO_LARGE' });
  writeFileSync(join(dir, 'garbage'), 'not a bundle');
  await t.rejects(unpack(join(dir, 'garbage')), { code: 'INVALID', message: /not a gzipped tar/ });
  t.throws(() => validateSignedRelease({ manifest: { ...release.manifest, files: [{ ...fileOf('run.sh'), path: '../escape' }] } }), { code: 'INVALID', field: '/manifest/files/0/path' });
  t.throws(() => validateSignedRelease({ manifest: { ...release.manifest, files: [fileOf('run.sh'), fileOf('run.sh')] } }), { code: 'INVALID', message: /listed twice/ });
});

t.test('a file that changed while the release was built is refused, naming it', async (t) => {
  writeFileSync(join(tree, 'api/main.ts'), 'console.log("v9");\n');
  t.teardown(() => writeFileSync(join(tree, 'api/main.ts'), 'console.log("v2");\n'));
  await t.rejects(writeBundle(join(dir, 'changed.tar.gz'), release, tree), { code: 'CONFLICT', message: /api\/main\.ts changed while the release was built/ });
});
