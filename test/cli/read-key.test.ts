// The zone commands against a node that protects reads (as every node listening beyond
// loopback does by default, with its trust policy's signers' keys): a command signs its
// read tokens with $ZONE_READ_KEY, its own --key, or the operator key of the local
// cluster that has a node at that URL; without any it is refused with 401.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { writeSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { startNode } from '../api/node.ts';
import { ZONE } from '../helpers/zone-cli.ts';

const base = mkdtempSync(join(tmpdir(), 'zone-read-key-'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));

function zone(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = { ...process.env };
  delete clean.ZONE_READ_KEY;
  delete clean.ZONE_NODE;
  return new Promise((resolve) => {
    execFile(ZONE, args, { cwd, env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

t.test('zone commands send a read token from $ZONE_READ_KEY, their --key or the local cluster\'s operator key', async (t) => {
  const n = await startNode(t, {}, { exposed: true });
  const operator = join(n.dataDir, 'operator.key');
  const stranger = join(base, 'stranger.key');
  writeSigningKey(stranger, generateSigningKeyPair());
  const plain = join(base, 'plain');
  mkdirSync(plain);

  t.match(await zone(['status', '--node', n.url], plain), { code: 1, stderr: /refused \(401 SIGNATURE\).*this node requires a read token/ }, 'no key: refused');
  t.match(await zone(['status', '--node', n.url], plain, { ZONE_READ_KEY: stranger }), { code: 1, stderr: /not signed by a trusted key/ }, 'a key the node does not trust: refused');
  t.match(await zone(['status', '--node', n.url], plain, { ZONE_READ_KEY: operator }), { code: 0, stdout: 'no blueprints on this node\n' }, '$ZONE_READ_KEY');

  // A directory where `zone cluster up` ran: its state names the node and the operator key.
  const grid = join(base, 'grid');
  mkdirSync(join(grid, '.zone/cluster/local'), { recursive: true });
  writeFileSync(join(grid, '.zone/cluster/local/cluster.json'), JSON.stringify({ name: 'local', operatorKey: operator, nodes: [{ api: n.url }] }));
  t.match(await zone(['node', '--node', n.url], grid), { code: 0, stdout: /^node +\S+\n/ }, 'the local cluster\'s operator key, found by the node URL');

  // apply follows the events after its submit: with --key it reads with that (a signer's) key.
  const file = join(base, 'app.yaml');
  writeFileSync(file, stringify({ name: 'app', version: 1, owner: n.operator.publicKey, node: n.appliance.identity.id, workloads: [{ name: 'w', kind: 'container', image: 'zone/busybox' }] }));
  const applied = await zone(['apply', file, '--node', n.url, '--key', operator, '--timeout', '30'], plain);
  t.match(applied, { code: 0, stdout: /app: all workloads running/ }, applied.stderr);
});
