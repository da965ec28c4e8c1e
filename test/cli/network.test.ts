// zone network plan: every node's overlay section, keys sealed to the right node.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import type { Network } from '../../blueprints/schema.ts';
import { validateBlueprint } from '../../blueprints/parse.ts';
import { generateBoxKeyPair, openSealed } from '../../blueprints/seal.ts';
import { wireguardPublicKey } from '../../drivers/wireguard/keys.ts';

const run = promisify(execFile);
const zone = (...args: string[]) => run('node', ['--import', 'tsx', 'cli/zone.ts', ...args]);

const dir = await mkdtemp(join(tmpdir(), 'zone-network-plan-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const boxes = [1, 2, 3].map(() => generateBoxKeyPair());
const OWNER = 'ed25519:' + Buffer.alloc(32, 5).toString('base64');
/** Where node i's key may be opened: the owner's blueprints (any, by default) on node i, in the network's key field. */
const placeOf = (i: number, blueprint = 'app') => ({ owner: OWNER, node: `node${i + 1}`, blueprint, field: 'networks/mesh/wireguard/privateKey' });
const nodesFile = join(dir, 'nodes.yaml');
await writeFile(nodesFile, `nodes:\n${boxes.map((b, i) => `  - { id: node${i + 1}, boxKey: "${b.publicKey}", endpoint: "192.0.2.${i + 1}:5182${i}" }\n`).join('')}`);

t.test('each node gets its subnet, a key only it can open, and the others as peers', async (t) => {
  const { stdout } = await zone('network', 'plan', '--owner', OWNER, '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/16', '--keepalive', '25');
  const plan = parse(stdout) as Record<string, { networks: Network[] }>;
  t.same(Object.keys(plan), ['node1', 'node2', 'node3']);
  const nets = Object.values(plan).map((p) => p.networks[0]!);
  t.same(nets.map((n) => n.subnet), ['10.88.0.0/24', '10.88.1.0/24', '10.88.2.0/24']);
  t.same(nets.map((n) => n.wireguard!.listenPort), [51820, 51821, 51822], 'the listen port is the endpoint\'s');
  const publicKeys = nets.map((n, i) => wireguardPublicKey(openSealed(n.wireguard!.privateKey, boxes[i]!.secretKey, placeOf(i))));
  t.throws(() => openSealed(nets[0]!.wireguard!.privateKey, boxes[1]!.secretKey, placeOf(1)), /does not open with this node/, 'node 2 cannot open node 1\'s key');
  t.throws(() => openSealed(nets[0]!.wireguard!.privateKey, boxes[0]!.secretKey, { ...placeOf(0), owner: 'ed25519:' + Buffer.alloc(32, 6).toString('base64') }), /bound to owner/, 'nor another owner');
  t.throws(() => openSealed(nets[0]!.wireguard!.privateKey, boxes[0]!.secretKey, { ...placeOf(0), field: 'networks/other/wireguard/privateKey' }), /bound to field/, 'nor another network');
  nets.forEach((n, i) => {
    t.same(n.wireguard!.peers.map((p) => p.publicKey), publicKeys.filter((_, j) => j !== i), `node${i + 1} peers with the others`);
    t.same(n.wireguard!.peers.map((p) => p.allowedIPs[0]), nets.filter((_, j) => j !== i).map((o) => o.subnet));
    t.ok(n.wireguard!.peers.every((p) => p.persistentKeepalive === 25));
  });
  // Each section drops into a valid blueprint.
  const bp = validateBlueprint({ name: 'app', version: 1, owner: 'ed25519:' + Buffer.alloc(32).toString('base64'), node: 'node1', networks: plan.node1!.networks });
  t.equal(bp.networks?.[0]?.name, 'mesh');
});

t.test('--out-dir writes one networks: section per node, ready to append to its blueprint', async (t) => {
  const out = join(dir, 'sections');
  const { stdout } = await zone('network', 'plan', '--owner', OWNER, '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/16', '--out-dir', out);
  t.match(stdout, /wrote 3 networks: sections/);
  const sections = await Promise.all([1, 2, 3].map(async (i) => parse(await readFile(join(out, `node${i}.yaml`), 'utf8')) as { networks: Network[] }));
  t.same(sections.map((s) => s.networks[0]!.subnet), ['10.88.0.0/24', '10.88.1.0/24', '10.88.2.0/24']);
  const head = 'name: app\nversion: 1\nowner: ed25519:' + 'A'.repeat(43) + '=\nnode: node2\n';
  const bp = validateBlueprint(parse(head + await readFile(join(out, 'node2.yaml'), 'utf8')));
  t.equal(bp.networks?.[0]?.subnet, '10.88.1.0/24', 'head + section is a valid blueprint');
});

t.test('JSON output on request, with a chosen subnet length', async (t) => {
  const { stdout } = await zone('network', 'plan', '--owner', OWNER, '--nodes', nodesFile, '--name', 'mesh', '--range', '10.9.0.0/24', '--subnet-prefix', '26', '--json');
  const plan = JSON.parse(stdout) as Record<string, { networks: Network[] }>;
  t.same(Object.values(plan).map((p) => p.networks[0]!.subnet), ['10.9.0.0/26', '10.9.0.64/26', '10.9.0.128/26']);
});

t.test('bad input is refused with the field and what would be accepted', async (t) => {
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, `nodes:\n  - { id: node1, boxKey: "${boxes[0]!.publicKey}", endpoint: "192.0.2.1" }\n`);
  await t.rejects(zone('network', 'plan', '--owner', OWNER, '--nodes', bad, '--name', 'mesh', '--range', '10.88.0.0/16'), {
    code: 1, stderr: /bad\.yaml: \/nodes\/0\/endpoint: .*expected nodes: \[\{ id, boxKey, endpoint \}\]/,
  });
  await t.rejects(zone('network', 'plan', '--owner', OWNER, '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/30'), {
    code: 1, stderr: /subnet prefix \/24 must be between \/30/,
  });
  await t.rejects(zone('network', 'plan', '--owner', OWNER, '--nodes', nodesFile, '--name', 'Mesh!', '--range', '10.88.0.0/16'), { code: 2, stderr: /--name "Mesh!"/ });
  await t.rejects(zone('network', 'plan', '--owner', 'alice', '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/16'), { code: 2, stderr: /owner "alice" is not an ed25519/ });
  await t.rejects(zone('network', 'plan', '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/16'), { code: 2, stderr: /--owner <key>/ });
});

t.test('--blueprint binds each key to one blueprint of the owner', async (t) => {
  const { stdout } = await zone('network', 'plan', '--owner', OWNER, '--blueprint', 'app', '--nodes', nodesFile, '--name', 'mesh', '--range', '10.88.0.0/16');
  const key = (parse(stdout) as Record<string, { networks: Network[] }>).node1!.networks[0]!.wireguard!.privateKey;
  t.ok(openSealed(key, boxes[0]!.secretKey, placeOf(0, 'app')));
  t.throws(() => openSealed(key, boxes[0]!.secretKey, placeOf(0, 'other')), /bound to blueprint app, not other/);
});
