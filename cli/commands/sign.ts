// zone sign: adds signatures to a blueprint, keeping its format (and a YAML file's comments).
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { readSigningKey } from '../../blueprints/keys.ts';
import { parseYamlDocument, validateBlueprint } from '../../blueprints/parse.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { readBlueprintFile } from '../blueprint-file.ts';
import { action, CliFailure, inFile } from '../output.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('sign')
    .description('sign a blueprint (YAML or JSON) with one or more keys; existing signatures are kept')
    .argument('<file>', 'the blueprint; - for stdin (YAML)')
    .requiredOption('--key <keyfile>', 'a key file from zone keygen (repeat for several signers)', collect, [])
    .option('--out <file>', 'write the signed blueprint here instead of stdout')
    .action(action(async (file: string, opts: { key: string[]; out?: string }) => {
      const input = await readBlueprintFile(file);
      let bp = inFile(file, () => validateBlueprint(input.value));
      for (const keyFile of opts.key) bp = signBlueprint(bp, readSigningKey(keyFile).secretKey);
      let text: string;
      if (input.format === 'json') {
        text = JSON.stringify(bp, null, 2) + '\n';
      } else {
        const doc = parseYamlDocument(input.text);
        doc.set('signatures', doc.createNode(bp.signatures));
        text = doc.toString();
      }
      if (!opts.out) {
        process.stdout.write(text);
        return;
      }
      try {
        await writeFile(opts.out, text);
      } catch (err) {
        throw new CliFailure(`${opts.out}: cannot write (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      process.stderr.write(`signed ${bp.name} v${bp.version} (${bp.signatures?.length ?? 0} signatures) -> ${opts.out}\n`);
    }));
}
