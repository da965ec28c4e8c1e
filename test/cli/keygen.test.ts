// zone keygen, run as a child process: writes the default key file 0600 and prints the public key.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSigningKey } from '../../blueprints/keys.ts';
import { runZone } from '../helpers/zone-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-cli-keygen-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('without --out it writes zone-signing-key.json in the current folder', async (t) => {
  const run = await runZone(['keygen'], { cwd: dir });
  t.equal(run.code, 0, run.stderr);
  const path = join(dir, 'zone-signing-key.json');
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(readSigningKey(path).publicKey, run.stdout.trim());
  t.notMatch(run.stdout + run.stderr, JSON.parse(readFileSync(path, 'utf8')).secretKey, 'the secret key is not printed');
  const denied = await runZone(['keygen', '--out', join(dir, 'no/such/dir/key.json')], { cwd: dir });
  t.equal(denied.code, 1);
  t.match(denied.stderr, /cannot create .* \(ENOENT\)/);
});
