// zone lint: every problem of a blueprint (schema and cross-field rules), one per line.
import type { Command } from 'commander';
import { unpinnedImageWarnings } from '../../blueprints/image-ref.ts';
import { blueprintProblems } from '../../blueprints/parse.ts';
import { readBlueprintFile } from '../blueprint-file.ts';
import { action, CliFailure } from '../output.ts';

export function register(program: Command): void {
  program
    .command('lint')
    .description('check a blueprint against the format and its cross-field rules; prints each problem with its field')
    .argument('<file>', 'the blueprint; - for stdin (YAML)')
    .action(action(async (file: string) => {
      const input = await readBlueprintFile(file);
      const problems = blueprintProblems(input.value);
      for (const p of problems) process.stdout.write(`${file}: ${p.field}: ${p.message}\n`);
      if (problems.length) throw new CliFailure(`${file}: ${problems.length} problem(s)`);
      const { name, version, workloads } = input.value as { name: string; version: number; workloads?: { name: string; image: string }[] };
      for (const w of unpinnedImageWarnings(workloads ?? [])) process.stderr.write(`${file}: ${w.field}: ${w.message}\n`);
      process.stdout.write(`${file}: ok (${name} v${version}, ${workloads?.length ?? 0} workload(s))\n`);
    }));
}
