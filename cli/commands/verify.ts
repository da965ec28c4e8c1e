// zone verify: checks a signed blueprint offline, as a node with this trust policy would.
import { InvalidArgumentError, type Command } from 'commander';
import { loadTrustPolicy } from '../../blueprints/policy.ts';
import { verifyBlueprintWithSigners } from '../../blueprints/verify.ts';
import { readBlueprintFile } from '../blueprint-file.ts';
import { action, inFile } from '../output.ts';

function version(value: string): number {
  const n = Number(value);
  if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('a whole number is expected');
  return n;
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('verify signatures, trust policy quorum, node, version and expiry of a blueprint (offline)')
    .argument('<file>', 'the signed blueprint; - for stdin (YAML)')
    .requiredOption('--policy <file>', 'the trust policy (JSON or YAML)')
    .option('--node <id>', 'the node it must be for (default: the node it names)')
    .option('--stored-version <n>', 'the version a node already holds; the blueprint must be newer', version)
    .action(action(async (file: string, opts: { policy: string; node?: string; storedVersion?: number }) => {
      const policy = loadTrustPolicy(opts.policy);
      const input = await readBlueprintFile(file);
      const named = (input.value as { node?: unknown } | null)?.node;
      const nodeId = opts.node ?? (typeof named === 'string' ? named : '');
      const { blueprint, signers } = inFile(file, () => verifyBlueprintWithSigners(input.value, {
        policy,
        nodeId,
        storedVersion: () => opts.storedVersion ?? null,
        now: new Date(),
      }));
      process.stdout.write(`ok: ${blueprint.name} v${blueprint.version}, signers ${signers.join(', ')}\n`);
    }));
}
