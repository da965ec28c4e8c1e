// The import-layer rule of `npm run lint` bites: run as the lint script runs it, it
// refuses an upward import in a fixture tree and lets downward ones pass, and finds
// none in the real tree.
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The depcruise command of the lint script: its arguments, with the config made absolute. */
function lintArgs(): string[] {
  const lint = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.lint ?? '';
  const command = lint.split('&&').map((part) => part.trim()).find((part) => part.startsWith('depcruise '));
  if (!command) throw new Error(`the lint script runs no depcruise: ${lint}`);
  return command.split(/\s+/).slice(1).map((arg) => (arg.endsWith('.dependency-cruiser.js') ? join(root, arg) : arg));
}

function depcruise(cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(join(root, 'node_modules/.bin/depcruise'), lintArgs(), { cwd, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: stdout + stderr });
    });
  });
}

t.test('an upward import is reported, naming the rule and both files; downward imports pass', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zone-layers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(root, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  const files: Record<string, string> = {
    'lib/errors.ts': "import { schema } from '../blueprints/schema.ts';\nexport const errors = schema;\n",
    'lib/base.ts': 'export const base = 1;\n',
    'blueprints/schema.ts': "import { base } from '../lib/base.ts';\nexport const schema = base;\n",
    'drivers/contract.ts': "import { appliance } from '../appliance/appliance.ts';\nexport const contract = appliance;\n",
    'appliance/appliance.ts': "import { schema } from '../blueprints/schema.ts';\nexport const appliance = schema;\n",
    'api/main.ts': "import { appliance } from '../appliance/appliance.ts';\nexport const main = appliance;\n",
    'cli/zone.ts': "import { main } from '../api/main.ts';\nexport const zone = main;\n",
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const { code, output } = await depcruise(dir);
  t.not(code, 0, 'the lint fails');
  t.match(output, /error lib-imports-down-only: lib\/errors\.ts → blueprints\/schema\.ts/);
  t.match(output, /error drivers-imports-down-only: drivers\/contract\.ts → appliance\/appliance\.ts/);
  t.match(output, /2 dependency violations \(2 errors/, 'and nothing else: the downward imports pass');
});

t.test('the real tree has no upward import', async (t) => {
  const { code, output } = await depcruise(root);
  t.equal(code, 0, output);
  t.match(output, /no dependency violations found/);
});
