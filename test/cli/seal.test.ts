// zone seal, run as a child process: the printed value opens with the node's key.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateBoxKeyPair, openSealed } from '../../blueprints/seal.ts';
import { runZone } from '../helpers/zone-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-cli-seal-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const node = generateBoxKeyPair();

t.test('seals --value and stdin to the node key', async (t) => {
  const fromArg = await runZone(['seal', '--node-key', node.publicKey, '--value', 'hunter2'], { cwd: dir });
  t.equal(fromArg.code, 0, fromArg.stderr);
  t.equal(openSealed(fromArg.stdout.trim(), node.secretKey), 'hunter2');
  const fromStdin = await runZone(['seal', '--node-key', node.publicKey], { cwd: dir, input: 's3cret\n' });
  t.equal(openSealed(fromStdin.stdout.trim(), node.secretKey), 's3cret', 'the trailing newline is not sealed');
});

t.test('a bad node key or an empty secret is refused without echoing the secret', async (t) => {
  const badKey = await runZone(['seal', '--node-key', 'nope', '--value', 'hunter2'], { cwd: dir });
  t.same([badKey.code, badKey.stderr], [1, 'zone: node box key must be base64 of 32 bytes (44 characters), as GET /v1/node shows it\n']);
  const empty = await runZone(['seal', '--node-key', node.publicKey], { cwd: dir, input: '' });
  t.equal(empty.code, 1);
  const usage = await runZone(['seal', '--value', 'hunter2'], { cwd: dir });
  t.equal(usage.code, 2, 'the node key is required');
  t.notMatch(badKey.stderr + usage.stderr, /hunter2/);
});
