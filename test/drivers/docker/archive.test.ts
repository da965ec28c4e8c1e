// Image archives checked whole without dockerd: archives made here in the layouts docker
// save writes (legacy and OCI), and every way one byte or one name can be wrong.
import t from 'tap';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import tar from 'tar-stream';
import { readImageArchive } from '../../../drivers/docker/archive.ts';

const sha = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** A one-layer archive; `edit` changes its files before they are packed. */
async function archive(options: { oci?: boolean; edit?: (files: Map<string, Buffer | { link: string }>) => void } = {}): Promise<{ bytes: Buffer; digest: string }> {
  const layer = Buffer.from('pretend this is a layer tar '.repeat(100));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } }));
  const files = new Map<string, Buffer | { link: string }>();
  const configName = options.oci ? `blobs/sha256/${sha(config)}` : `${sha(config)}.json`;
  const layerName = options.oci ? `blobs/sha256/${sha(layer)}` : 'abc/layer.tar';
  files.set(configName, config);
  files.set(layerName, layer);
  files.set('manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['zone/app:1'], Layers: [layerName] }])));
  options.edit?.(files);
  const pack = tar.pack();
  for (const [name, content] of files) {
    if (Buffer.isBuffer(content)) pack.entry({ name }, content);
    else pack.entry({ name, type: 'symlink', linkname: content.link });
  }
  pack.finalize();
  return { bytes: await buffer(pack), digest: `sha256:${sha(config)}` };
}

const read = (bytes: Buffer) => readImageArchive(Readable.from([bytes]));

t.test('the digest is the sha256 of the config, in the legacy and the OCI layout', async (t) => {
  for (const oci of [false, true]) {
    const { bytes, digest } = await archive({ oci });
    t.same(await read(bytes), { digest, size: bytes.length, repoTags: ['zone/app:1'] }, oci ? 'OCI' : 'legacy');
  }
});

t.test('a layer saved twice is a link to its first copy', async (t) => {
  const { bytes } = await archive({
    edit: (files) => {
      const manifest = JSON.parse(files.get('manifest.json')!.toString()) as [{ Layers: string[] }];
      files.set('def/layer.tar', { link: '../abc/layer.tar' });
      manifest[0].Layers = ['def/layer.tar'];
      files.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
    },
  });
  t.resolves(read(bytes));
});

const refusals: [string, (files: Map<string, Buffer | { link: string }>) => void, RegExp][] = [
  ['a layer with one byte changed', (f) => { const [name, layer] = [...f].find(([n]) => n.endsWith('layer.tar'))!; (layer as Buffer)[7]! ^= 1; f.set(name, layer); }, /layer 0 \(abc\/layer\.tar\) has sha256:[0-9a-f]{64}, the config says sha256:/],
  ['a config with one byte changed', (f) => { const [name, config] = [...f].find(([n]) => n.endsWith('.json') && n !== 'manifest.json')!; (config as Buffer)[3]! ^= 1; f.set(name, config); }, /the config .* does not match its name/],
  ['no manifest', (f) => f.delete('manifest.json'), /manifest\.json is missing/],
  ['a manifest that is not JSON', (f) => f.set('manifest.json', Buffer.from('[{')), /manifest\.json is not JSON/],
  ['two images', (f) => f.set('manifest.json', Buffer.from(JSON.stringify([{}, {}]))), /exactly one image/],
  ['a missing layer', (f) => f.delete('abc/layer.tar'), /layer 0 \(abc\/layer\.tar\) is not in the archive/],
];
for (const [what, edit, message] of refusals) {
  t.test(`refused: ${what}`, async (t) => {
    const { bytes } = await archive({ edit });
    await t.rejects(read(bytes), { name: 'ImageArchiveError', message });
  });
}

t.test('small files are kept up to 16 MiB in all: a large manifest after more is refused, not held', async (t) => {
  const { bytes } = await archive({
    edit: (f) => {
      const saved = [...f];
      f.clear();
      for (let i = 0; i < 24; i++) f.set(`filler-${i}`, Buffer.alloc(768 * 1024, i));
      for (const [name, content] of saved) f.set(name, content);
      const manifest = JSON.parse(f.get('manifest.json')!.toString()) as [{ RepoTags: string[] }];
      manifest[0].RepoTags.push('x'.repeat(900 * 1024));
      f.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
    },
  });
  await t.rejects(read(bytes), { name: 'ImageArchiveError', message: /manifest\.json comes after more than 16777216 bytes of other small files/ });
});

t.test('refused: a blob whose content is not its name, and bytes that are not a tar', async (t) => {
  const { bytes } = await archive({ oci: true, edit: (f) => f.set(`blobs/sha256/${'0'.repeat(64)}`, Buffer.from('x')) });
  await t.rejects(read(bytes), { message: /blobs\/sha256\/0{64} does not match its name/ });
  await t.rejects(read(Buffer.from('definitely not a tar archive '.repeat(40))), { name: 'ImageArchiveError' });
});
