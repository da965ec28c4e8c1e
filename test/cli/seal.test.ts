// zone seal, run as a child process: the printed value opens with the node's key, at
// the place given by --owner, --node, --blueprint and --field, and nowhere else.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { generateBoxKeyPair, openSealed } from '../../blueprints/seal.ts';
import { runZone } from '../helpers/zone-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-cli-seal-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const node = generateBoxKeyPair();
const owner = generateSigningKeyPair().publicKey;
const place = { owner, node: 'node1', blueprint: 'shop', field: 'workloads/web/env/TOKEN' };
const args = (p: Record<string, string> = place) => ['seal', '--node-key', node.publicKey, '--owner', p.owner!, '--node', p.node!, '--blueprint', p.blueprint!, '--field', p.field!];

t.test('seals --value and stdin to the node key for one place', async (t) => {
  const fromArg = await runZone([...args(), '--value', 'hunter2'], { cwd: dir });
  t.equal(fromArg.code, 0, fromArg.stderr);
  t.match(fromArg.stdout, /^sealed:v2:/);
  t.equal(openSealed(fromArg.stdout.trim(), node.secretKey, place), 'hunter2');
  t.throws(() => openSealed(fromArg.stdout.trim(), node.secretKey, { ...place, field: 'workloads/web/env/OTHER' }), /bound to field/);
  const fromStdin = await runZone(args(), { cwd: dir, input: 's3cret\n' });
  t.equal(openSealed(fromStdin.stdout.trim(), node.secretKey, place), 's3cret', 'the trailing newline is not sealed');
  const anywhere = await runZone([...args({ ...place, blueprint: '*', field: '*' }), '--value', 'x'], { cwd: dir });
  t.equal(openSealed(anywhere.stdout.trim(), node.secretKey, { ...place, blueprint: 'other', field: 'networks/mesh/wireguard/privateKey' }), 'x', '* for blueprint and field');
});

t.test('a bad key, place or an empty secret is refused without echoing the secret', async (t) => {
  const badKey = await runZone(['seal', ...args().slice(1).map((a) => (a === node.publicKey ? 'nope' : a)), '--value', 'hunter2'], { cwd: dir });
  t.same([badKey.code, badKey.stderr], [2, 'zone: --node-key: node box key must be base64 of 32 bytes (44 characters), as GET /v1/node shows it\n']);
  const badField = await runZone([...args({ ...place, field: '/workloads/0/env/TOKEN' }), '--value', 'hunter2'], { cwd: dir });
  t.same([badField.code, badField.stderr], [2, 'zone: --field: field "/workloads/0/env/TOKEN" is not workloads/NAME/env/VAR, networks/NAME/wireguard/privateKey, registries/HOST/password (in the node config) or *\n']);
  const badOwner = await runZone([...args({ ...place, owner: 'alice' }), '--value', 'hunter2'], { cwd: dir });
  t.match(badOwner, { code: 2, stderr: /--owner: owner "alice" is not an ed25519/ });
  const empty = await runZone(args(), { cwd: dir, input: '' });
  t.equal(empty.code, 1);
  const usage = await runZone(['seal', '--node-key', node.publicKey, '--value', 'hunter2'], { cwd: dir });
  t.equal(usage.code, 2, 'the place is required');
  t.match(usage.stderr, /--node <id>/);
  t.notMatch(badKey.stderr + badField.stderr + badOwner.stderr + usage.stderr, /hunter2/);
});
