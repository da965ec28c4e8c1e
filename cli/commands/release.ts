// zone release build | sign: a signed bundle of the node software, for zone upgrade.
import { rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { readSigningKey } from '../../blueprints/keys.ts';
import { readBundleManifest, rewriteManifest } from '../../appliance/release/bundle.ts';
import { signRelease } from '../../appliance/release/sign.ts';
import { releaseDigest } from '../../appliance/release/manifest.ts';
import { buildRelease } from '../release/build.ts';
import { action } from '../output.ts';

const collect = (value: string, previous: string[]) => [...previous, value];
/** The project tree this command runs from. */
const OWN_TREE = fileURLToPath(new URL('../..', import.meta.url));
const MIB = 2 ** 20;

export function register(program: Command): void {
  const release = program.command('release').description('build and sign release bundles of the node software (see zone upgrade)');
  release
    .command('build')
    .description('pack a project tree (sources, production dependencies) and an unsigned manifest into a bundle')
    .option('--source <dir>', 'the project tree (default: the one zone runs from)', OWN_TREE)
    .option('--release-version <x.y.z>', 'the release version (default: package.json\'s)')
    .option('--rollback', 'mark it a rollback: nodes take it over a newer version')
    .requiredOption('--out <file>', 'the bundle to write (.tar.gz)')
    .action(action(async (opts: { source: string; releaseVersion?: string; rollback?: boolean; out: string }) => {
      const started = Date.now();
      const built = await buildRelease({ root: opts.source, out: opts.out, ...(opts.releaseVersion ? { version: opts.releaseVersion } : {}), ...(opts.rollback ? { rollback: true } : {}) });
      const { manifest } = built;
      const bytes = manifest.files.reduce((sum, f) => sum + f.size, 0);
      process.stdout.write(`built zone release ${manifest.version}${manifest.rollback ? ' (rollback)' : ''}: ${manifest.files.length} files, ${(bytes / MIB).toFixed(1)} MiB unpacked, ` +
        `Node ${manifest.engines.node}, store schema ${manifest.storeSchema} -> ${opts.out} (${((Date.now() - started) / 1000).toFixed(1)} s; unsigned: zone release sign)\n`);
    }));
  release
    .command('sign')
    .description('sign a bundle\'s manifest (repeat --key for several signers); existing signatures are kept')
    .argument('<bundle>', 'the bundle from zone release build')
    .requiredOption('--key <keyfile>', 'a key file from zone keygen (repeat for several signers)', collect, [])
    .option('--out <file>', 'write the signed bundle here (default: in place)')
    .action(action(async (bundle: string, opts: { key: string[]; out?: string }) => {
      let signed = await readBundleManifest(bundle);
      for (const keyFile of opts.key) signed = signRelease(signed, readSigningKey(keyFile).secretKey);
      const out = opts.out ?? bundle;
      const partial = `${out}.partial`;
      await rewriteManifest(bundle, partial, signed);
      await rename(partial, out);
      // The digest names the release in the grid's release store (zone upgrade --release).
      process.stdout.write(`signed zone release ${signed.manifest.version} ${releaseDigest(signed.manifest)} (${signed.signatures?.length ?? 0} signatures) -> ${out}\n`);
    }));
}
