// zone cluster up 3 / down: three appliances in their own namespaces, an overlay
// between them, and nothing left behind afterwards.
import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { workloadId } from '../../drivers/names.ts';
import type { Network } from '../../blueprints/schema.ts';
import { addressAt } from '../../drivers/wireguard/addresses.ts';
import { networkId } from '../../drivers/names.ts';
import { wireguardInterface } from '../../drivers/wireguard/names.ts';
import type { ClusterState } from '../../cli/cluster/grid.ts';
import { APPLIANCE_NODE_FLAGS } from '../../appliance/node-flags.ts';
import { run, sh, tearDownCluster, zone } from '../helpers/cluster.ts';
import { GRID_AUDIENCE, makeOwnerToken, makeReadToken } from '../../lib/tokens.ts';
import { restartPath } from '../../appliance/pseudokernel/proc/node-control.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { opened, reachableFrom } from '../helpers/probe.ts';
import { waitFor } from '../helpers/wait.ts';
import { ZONE } from '../helpers/zone-cli.ts';
import { holdExclusive } from '../helpers/exclusive.ts';

/** The nodes listen beyond loopback: reads need a token of the operator's (the trust policy's signer). */
const readAuthed = async (url: string) => fetch(url, { headers: { authorization: makeReadToken(readSigningKey(state!.operatorKey), { aud: GRID_AUDIENCE, method: 'GET', path: new URL(url).pathname }) } });

const NAME = 'ctest';                        // unique to this file: namespaces zcl-ctest-*
const SUBNET = '10.214.7.0/24';              // unique to this file too (image-cluster 10.214.8, vm-cluster 10.214.9)
// Another run of this file (another checkout on this machine) would want the same name and subnet: it waits.
await holdExclusive(`cluster-${NAME}`);
const base = await mkdtemp(join(tmpdir(), 'zone-cluster-test-'));
const dir = join(base, 'cluster');
let state: ClusterState | null = null;

t.teardown(async () => {
  await tearDownCluster(NAME, dir, state);
  await rm(base, { recursive: true, force: true });
});

t.test('up 3 starts three nodes with their own identity and API, trusting one operator key', async (t) => {
  const { stdout } = await zone('cluster', 'up', '3', '--name', NAME, '--subnet', SUBNET, '--dir', dir);
  state = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterState;
  t.equal(state.nodes.length, 3);
  for (const n of state.nodes) {
    t.match(stdout, `${n.id}  ${n.api}`, `prints node ${n.index}'s id and API`);
    t.equal((await fetch(`${n.api}/v1/node`)).status, 401, `node ${n.index} protects reads (it listens beyond loopback)`);
    const info = await (await readAuthed(`${n.api}/v1/node`)).json() as { id?: string; boxKey?: string };
    t.same([info.id, info.boxKey], [n.id, n.boxKey], `node ${n.index} answers from the host with its identity`);
    t.same((await readFile(`/proc/${n.pid}/cmdline`, 'utf8')).split('\0').filter((arg) => APPLIANCE_NODE_FLAGS.includes(arg)), APPLIANCE_NODE_FLAGS, `node ${n.index}'s appliance runs with the node flags`);
  }
  t.equal(new Set(state.nodes.map((n) => n.id)).size, 3, 'three identities');
  const configs = await Promise.all(state.nodes.map(async (n) => JSON.parse(await readFile(join(n.dataDir, 'config.json'), 'utf8')) as { trustPolicy: string; nats: { listen: string; cluster: { routes: string[]; tls: { ca: string } } } }));
  t.ok(configs.every((c) => c.trustPolicy === configs[0]!.trustPolicy), 'every node reads the same trust policy');
  t.same(configs.map((c) => c.nats.cluster.routes.length), [2, 2, 2], 'every node\'s nats-server routes to the two others');
  t.same(configs.map((c) => [c.nats.listen, c.nats.cluster.tls.ca]), Array(3).fill(['127.0.0.1:4222', join(dir, 'ca.crt')]), 'takes clients on its loopback, routes with the grid\'s CA');
  t.match(await readFile(join(dir, 'trust-policy.json'), 'utf8'), JSON.parse(await readFile(state.operatorKey, 'utf8')).publicKey);
  await t.rejects(zone('cluster', 'up', '1', '--name', NAME, '--subnet', SUBNET, '--dir', dir), { code: 1, stderr: /already up/ });
});

t.test('blueprints declaring one planned network carry a container on node 1 to one on node 3, over WireGuard', async (t) => {
  const nodes = state!.nodes;
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const { stdout } = await zone('network', 'plan', '--nodes', join(dir, 'nodes.yaml'), '--owner', owner, '--blueprint', 'app', '--name', 'mesh', '--range', '10.89.0.0/16');
  const plan = parse(stdout) as Record<string, { networks: Network[] }>;
  const workloads = [
    { name: 'client', command: ['sleep', '600'] },
    { name: 'idle', command: ['sleep', '600'] },
    { name: 'web', command: ['sh', '-c', 'mkdir -p /www && echo via-overlay > /www/index.html && exec httpd -f -p 80 -h /www'] },
  ];
  const apply = async (i: number, version: number, networks: Network[]) => {
    const n = nodes[i]!;
    const file = join(base, `app-${n.index}-v${version}.yaml`);
    const w = workloads[i]!;
    await writeFile(file, stringify({
      name: 'app', version, owner, node: n.id,
      networks,
      workloads: [{ name: w.name, kind: 'container', image: 'zone/busybox', command: w.command, networks: [{ name: 'mesh', ip: `10.89.${i}.10` }] }],
    }));
    await zone('apply', file, '--node', n.api, '--key', state!.operatorKey, '--timeout', '120');
  };
  for (const i of [0, 1, 2]) await apply(i, 1, plan[nodes[i]!.id!]!.networks);

  const container = (i: number, w: string) => workloadId(nodes[i]!.id!, owner, 'app', w);
  const overlay = (i: number) => networkId({ node: nodes[i]!.id!, owner, blueprint: 'app', network: 'mesh' });
  const transfer = async (i: number) => (await sh('ip', 'netns', 'exec', overlay(i), 'wg', 'show', wireguardInterface(overlay(i)), 'transfer'))
    .split('\n').filter(Boolean).reduce((sum, line) => sum + Number(line.split('\t')[1]) + Number(line.split('\t')[2]), 0);
  const fetchWeb = () => sh('docker', 'exec', container(0, 'client'), 'timeout', '3', 'wget', '-q', '-O', '-', 'http://10.89.2.10/');

  const before = await waitFor(() => transfer(0).then((n) => n >= 0 ? n + 1 : null), { timeoutMs: 30_000, what: 'node 1\'s overlay interface' }) - 1;
  const body = await waitFor(fetchWeb, { timeoutMs: 60_000, what: 'node 1 -> node 3 over the overlay' });
  t.equal(body.trim(), 'via-overlay', 'the page served on node 3 reaches node 1');
  t.ok(await transfer(0) > before, 'the traffic crossed node 1\'s WireGuard interface');

  // Node 1's next version no longer lists node 3 as a peer: node 3 stops being reachable.
  const withoutNode3 = plan[nodes[0]!.id!]!.networks.map((n) => ({
    ...n, wireguard: { ...n.wireguard!, peers: n.wireguard!.peers!.filter((p) => !p.allowedIPs.includes('10.89.2.0/24')) },
  }));
  await apply(0, 2, withoutNode3);
  await waitFor(() => fetchWeb().then(() => false, () => true), { timeoutMs: 30_000, what: 'node 3 unreachable once its peer is removed' });
  t.pass('a peer removed in a new version stops reaching');

  // The interface deleted by hand is put back by node 1's appliance.
  const iface = wireguardInterface(overlay(0));
  await sh('ip', 'netns', 'exec', overlay(0), 'ip', 'link', 'del', iface);
  await waitFor(() => sh('ip', 'netns', 'exec', overlay(0), 'ip', '-o', 'link', 'show', iface).then((l) => /[<,]UP[,>]/.test(l)), { timeoutMs: 45_000, what: `${iface} recreated` });
  t.pass('an interface deleted by hand comes back');
});

t.test('a plain container on node 1 gets no answer from any node\'s API or NATS ports, on any address', async (t) => {
  const nodes = state!.nodes;
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const file = join(base, 'probe.yaml');
  await writeFile(file, stringify({ name: 'probe', version: 1, owner, node: nodes[0]!.id, workloads: [{ name: 'probe', kind: 'container', image: 'zone/busybox', command: ['sleep', '600'] }] }));
  await zone('apply', file, '--node', nodes[0]!.api, '--key', state!.operatorKey, '--timeout', '120');
  const probe = workloadId(nodes[0]!.id!, owner, 'probe', 'probe');
  // A control: something else listening in node 2's namespace is reached, so the path is there.
  const control = spawn('ip', ['netns', 'exec', nodes[1]!.namespace, process.execPath, '-e', 'require("net").createServer((s) => s.end()).listen(7799, () => console.log("up"))'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { control.kill('SIGKILL'); });
  await new Promise((resolve, reject) => { control.stdout.once('data', resolve); control.once('exit', reject); });
  // Every node's address, the host's end of the switch, and the container's gateway.
  const gateway = (await sh('docker', 'inspect', '-f', '{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}', probe)).trim();
  const addresses = [...nodes.map((n) => n.address), addressAt(state!.subnet, 1), gateway];
  const targets = addresses.flatMap((a) => [7700, 4222, 6222].map((p) => `${a}:${p}`));
  const result = await reachableFrom(probe, [...targets, `${nodes[1]!.address}:7799`]);
  t.strictSame(opened(result), [`${nodes[1]!.address}:7799`], `only the control answers; closed: ${targets.join(' ')}`);
  const tables = await sh('nft', 'list', 'tables');
  for (const n of nodes) t.match(tables, `table inet zone-${n.id}`, `node ${n.index} installed its table in the host's namespace, where dockerd is`);
});

t.test('the nodes\' nats-servers form one cluster: files a container writes to /zone/fs on node 1 are read byte-exact on node 3', async (t) => {
  const nodes = state!.nodes;
  for (const n of nodes) {
    const info = await (await readAuthed(`${n.api}/v1/node`)).json() as { drivers: { kind: string; available: boolean; reason?: string }[] };
    t.match(info.drivers.find((d) => d.kind === 'pseudokernel'), { available: true }, `node ${n.index}'s pseudokernel runs`);
  }
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const apply = async (i: number, workload: string, script: string) => {
    const file = join(base, `share-${i}.yaml`);
    await writeFile(file, stringify({ name: 'share', version: 1, owner, node: nodes[i]!.id, workloads: [{ name: workload, kind: 'container', image: 'zone/busybox', command: ['sh', '-c', script] }] }));
    await zone('apply', file, '--node', nodes[i]!.api, '--key', state!.operatorKey, '--timeout', '120');
  };
  // Written under a temporary name and renamed: a reader never sees a half-written file.
  // The two containers take turns through marker files in /zone/fs itself.
  const sizes = [0, 1, 1048576, 67108864];
  await apply(0, 'writer', [
    'echo hello-from-node-1 > /zone/fs/.hello && mv /zone/fs/.hello /zone/fs/hello.txt',
    ...sizes.map((n, i) => `head -c ${n} /dev/urandom > /tmp/s${i} && cp /tmp/s${i} /zone/fs/.s${i} && mv /zone/fs/.s${i} /zone/fs/s${i}`),
    'sha256sum /tmp/s*', 'touch /zone/fs/written',
    'until [ -e /zone/fs/checked ]; do sleep 1; done', 'mv /zone/fs/s1 /zone/fs/s1-renamed', 'rm /zone/fs/s0', 'touch /zone/fs/changed', 'exec sleep 600',
  ].join(' && '));
  await apply(2, 'reader', [
    'until [ -e /zone/fs/written ]; do sleep 1; done', 'cd /zone/fs', 'sha256sum s0 s1 s2 s3', 'touch checked',
    'until [ -e changed ]; do sleep 1; done', 'echo "ls: $(ls | tr "\\n" " ")"', 'exec sleep 600',
  ].join(' && '));
  const logsOf = (i: number, w: string) => run('docker', ['logs', workloadId(nodes[i]!.id!, owner, 'share', w)]).then((r) => r.stdout);
  const hashes = (out: string) => [...out.matchAll(/^([0-9a-f]{64})\s+\S*s(\d)$/gm)].map((m) => `${m[2]}:${m[1]}`);
  const written = await waitFor(() => logsOf(0, 'writer').then((out) => hashes(out).length === sizes.length && hashes(out)), { timeoutMs: 90_000, what: 'the writer on node 1' });
  const read = await waitFor(() => logsOf(2, 'reader').then((out) => hashes(out).length === sizes.length && hashes(out)), { timeoutMs: 90_000, what: 'the reader on node 3' });
  t.same(read, written, '0 B, 1 B, 1 MiB and 64 MiB written on node 1 are read byte-exact on node 3');
  const listing = await waitFor(() => logsOf(2, 'reader').then((out) => /^ls: (.*)$/m.exec(out)?.[1]), { timeoutMs: 60_000, what: 'the listing after the rename and unlink' });
  t.same(listing.trim().split(' ').sort(), ['changed', 'checked', 'hello.txt', 's1-renamed', 's2', 's3', 'written'], 'the rename and the unlink made on node 1 are seen on node 3');
});

t.test('NATS takes no session without the node\'s credentials: not from a plain container on nodes 1 and 3, not from the node itself, not from the host', async (t) => {
  const nodes = state!.nodes;
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const hello = 'printf \'CONNECT {"verbose":false}\\r\\nPING\\r\\n\'';
  // Whatever comes back until the server hangs up or 3 s passed (a refused connection, or a firewall's drop, answer nothing).
  const probe = (host: string, port: number) => `${hello} | timeout 3 nc -w 2 ${host} ${port} 2>&1; true`;
  for (const [i, w] of [[0, 'writer'], [2, 'reader']] as const) {
    for (const n of nodes) {
      for (const port of [4222, 6222]) {
        const answer = await sh('docker', 'exec', workloadId(nodes[i]!.id!, owner, 'share', w), 'sh', '-c', probe(n.address, port));
        t.notMatch(answer, /PONG/, `a container on node ${i + 1}: no session on node ${n.index}'s ${port}`);
      }
    }
  }
  // Independent of any firewall: NATS itself refuses.
  for (const n of nodes) {
    const inNode = (...cmd: string[]) => sh('ip', 'netns', 'exec', n.namespace, ...cmd);
    const listening = (await inNode('ss', '-Hltn', 'sport = :4222')).trim().split('\n').map((line) => line.split(/\s+/)[3]);
    t.same(listening, ['127.0.0.1:4222'], `node ${n.index}'s client port listens on its loopback only`);
    const local = await inNode('busybox', 'sh', '-c', probe('127.0.0.1', 4222).replace('nc -w', 'busybox nc -w'));
    t.match(local, /-ERR 'Authorization Violation'/, `node ${n.index}'s client port refuses a client without its key`);
    t.notMatch(local, /PONG/, 'and gives it no session');
    const route = await sh('busybox', 'sh', '-c', probe(n.address, 6222).replace('nc -w', 'busybox nc -w'));
    t.notMatch(route, /PONG|INFO/, `node ${n.index}'s route port gives the host no session (TLS first, its certificate required)`);
  }
  for (const n of nodes) {
    t.equal(statSync(join(n.dataDir, 'nats', 'client.nk')).mode & 0o777, 0o600, `node ${n.index}'s NATS key is 0600`);
    t.match(await readFile(join(n.dataDir, 'nats', 'nats-server.conf'), 'utf8'), /cluster \{[^]*tls \{[^]*verify: true/, `node ${n.index}'s routes use mutual TLS`);
  }
});

/** `lines` typed ahead into zone shell on node 2 in a pseudo-terminal (read one prompt at a time, as a user's would be); what it printed. */
async function shellOnNode2(t: Test, lines: string[]): Promise<string> {
  const child = spawn('script', ['-qfc', `${ZONE} shell --node ${state!.nodes[1]!.api} --key ${state!.operatorKey}`, '/dev/null'], {
    env: { ...process.env, ZONE_SHELL_HISTORY: join(base, 'shell-history') }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => { child.kill('SIGKILL'); });
  child.stdin.write([...lines, 'exit'].map((l) => `${l}\r`).join(''));
  t.equal(await exited, 0, 'the shell exits 0');
  return output;
}

t.test('zone shell on node 2, in a pseudo-terminal: ps lists the workloads of nodes 1 and 3, cat shows a file a container wrote', async (t) => {
  const nodes = state!.nodes;
  const output = await shellOnNode2(t, ['ps', 'cat /hello.txt']);
  t.match(output, new RegExp(`${nodes[0]!.id}[^\\n]*share[^\\n]*writer[^\\n]*running`), 'node 1\'s writer');
  t.match(output, new RegExp(`${nodes[2]!.id}[^\\n]*share[^\\n]*reader[^\\n]*running`), 'node 3\'s reader');
  t.match(output, 'hello-from-node-1', 'the file a container on node 1 wrote');
});

t.test('seq 1 1000000 | shuf on node 1 piped into sort on node 3, sort killed in the middle: the output is still exact; node 2\'s shell lists the pipe and restarts the sort', async (t) => {
  const nodes = state!.nodes;
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const [n1, n3] = [nodes[0]!, nodes[2]!];
  const apply = async (n: typeof n1, doc: Record<string, unknown>) => {
    const file = join(base, `${String(doc.name)}.yaml`);
    await writeFile(file, stringify({ version: 1, owner, node: n.id, ...doc }));
    await zone('apply', file, '--node', n.api, '--key', state!.operatorKey, '--timeout', '120');
  };
  const pipe = { from: `${n1.id}/gen/numbers.stdout`, to: `${n3.id}/sorter/sort.stdin` };
  // sort prints only at the end of its input, and the hash of what it printed: the log holds one line per finished run.
  await apply(n3, { name: 'sorter', workloads: [{ name: 'sort', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'sort -n | sha256sum'], restart: 'on-failure' }], pipes: [{ ...pipe, to: 'sort.stdin' }] });
  // The producer holds back its second half until the test says go: sort is killed between the halves.
  await apply(n1, {
    name: 'gen', pipes: [{ ...pipe, from: 'numbers.stdout' }],
    workloads: [{ name: 'numbers', kind: 'container', image: 'zone/busybox', restart: 'on-failure',
      command: ['sh', '-c', 'seq 1 500000 | shuf; touch /zone/fs/half; until [ -e /zone/fs/go ]; do sleep 1; done; seq 500001 1000000 | shuf'] }],
  });
  const producer = workloadId(n1.id!, owner, 'gen', 'numbers');
  const consumer = workloadId(n3.id!, owner, 'sorter', 'sort');
  await waitFor(() => sh('docker', 'exec', producer, 'test', '-e', '/zone/fs/half').then(() => true), { timeoutMs: 60_000, what: 'the first half written' });
  await sh('docker', 'kill', consumer);
  await sh('docker', 'exec', producer, 'touch', '/zone/fs/go');
  const expected = (await run('sh', ['-c', 'seq 1 1000000 | sha256sum'])).stdout.slice(0, 64);
  const hashes = await waitFor(async () => {
    const found = (await sh('docker', 'logs', consumer)).match(/^[0-9a-f]{64}/gm);
    return found && found.length > 0 ? found : null;
  }, { timeoutMs: 120_000, what: 'sort on node 3 finishing after its restart' });
  t.same(hashes, [expected], 'one finished run, whose output is seq 1 1000000 exactly');
  const status = await (await readAuthed(`${n3.api}/v1/blueprints/sorter`)).json() as { workloads: { restarts: number }[] };
  t.ok(status.workloads[0]!.restarts >= 1, 'the killed sort was started again by its node');

  // From node 2's shell: the pipe between nodes 1 and 3, then node 3's sort restarted
  // (node 2 asks node 3, which checks the owner's token itself).
  const restarts = async () => ((await (await readAuthed(`${n3.api}/v1/blueprints/sorter`)).json()) as { workloads: { restarts: number; state: string }[] }).workloads[0]!;
  const before = (await restarts()).restarts;
  const output = await shellOnNode2(t, ['pipe', 'kill sorter/sort']);
  t.match(output, new RegExp(`${pipe.from}\\s[^\\n]*${pipe.to}\\s`), 'pipe lists the pipe from node 1 to node 3');
  t.match(output, `restarting ${n3.id}/sorter/sort`);
  await waitFor(async () => { const s = await restarts(); return s.restarts === before + 1 && s.state === 'running'; }, { timeoutMs: 60_000, what: 'sort on node 3 restarted once more' });
  t.pass('node 3 restarted its sort when asked from node 2');

  // The owner's token for that restart is made for node 3: one made for node 2 is refused
  // by both, and one node 2 passed on is not accepted again at node 3.
  const n2 = nodes[1]!;
  const key = readSigningKey(state!.operatorKey);
  const path = restartPath(n3.id!, 'sorter', 'sort');
  const restart = (api: string, aud: string, token = makeOwnerToken(key, { aud, method: 'POST', path })) =>
    fetch(api + path, { method: 'POST', headers: { authorization: token } }).then(async (r) => ({ status: r.status, json: await r.json() as unknown }));
  t.match(await restart(n2.api, n2.id!), { status: 401, json: { error: 'SIGNATURE', message: `owner token refused: made for node ${n2.id}, not ${n3.id}` } }, 'at node 2, a token for node 2');
  t.match(await restart(n3.api, n2.id!), { status: 401, json: { error: 'SIGNATURE', message: `owner token refused: made for node ${n2.id}, not ${n3.id}` } }, 'at node 3, a token for node 2');
  const once = makeOwnerToken(key, { aud: n3.id!, method: 'POST', path });
  t.match(await restart(n2.api, n3.id!, once), { status: 202 }, 'node 2 passes on a token for node 3');
  t.match(await restart(n3.api, n3.id!, once), { status: 401, json: { message: /already used/ } }, 'which node 3 does not accept again');
});

t.test('down leaves no namespace, link, process or container behind', async (t) => {
  const nodes = state!.nodes;
  const owner = (JSON.parse(await readFile(state!.operatorKey, 'utf8')) as { publicKey: string }).publicKey;
  const wgPids = (await sh('pgrep', '-x', 'wireguard-go').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const { stdout } = await zone('cluster', 'down', '--name', NAME, '--dir', dir);
  t.match(stdout, /cluster ctest is down: 3 nodes removed/);
  t.same((await sh('ip', 'netns', 'list')).split('\n').filter((l) => l.startsWith(`zcl-${NAME}-`)), [], 'no node or switch namespace');
  const overlayNs = nodes.map((n) => networkId({ node: n.id!, owner, blueprint: 'app', network: 'mesh' }));
  t.ok(overlayNs.every((ns) => !existsSync(`/var/run/netns/${ns}`)), 'no overlay namespace');
  await t.rejects(sh('ip', 'link', 'show', `zcl-${NAME}`), 'no host link');
  for (const n of nodes) t.notOk(existsSync(`/proc/${n.pid}/cmdline`) && (await readFile(`/proc/${n.pid}/cmdline`, 'utf8')).includes('api/main.ts'), `appliance of node ${n.index} stopped`);
  const leftWg = (await sh('pgrep', '-x', 'wireguard-go').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const ours = await Promise.all(leftWg.filter((p) => wgPids.includes(p)).map(async (p) => (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0')));
  t.same(ours.filter((args) => overlayNs.some((ns) => args.includes(wireguardInterface(ns)))), [], 'no wireguard-go of the cluster');
  const natsLeft = (await sh('pgrep', '-fa', 'nats-server').catch(() => '')).split('\n').filter((l) => l.includes(dir));
  t.same(natsLeft, [], 'no nats-server of the cluster');
  const labelled = await Promise.all(nodes.map((n) => sh('docker', 'ps', '-aq', '--filter', `label=zone.node=${n.id}`)));
  t.same(labelled.map((s) => s.trim()), ['', '', ''], 'no container with the nodes\' labels');
  const networks = await Promise.all(nodes.map((n) => sh('docker', 'network', 'ls', '-q', '--filter', `label=zone.node=${n.id}`)));
  t.same(networks.map((s) => s.trim()), ['', '', ''], 'no Docker network with the nodes\' labels');
  const tables = await sh('nft', 'list', 'tables');
  t.notOk(nodes.some((n) => tables.includes(`zone-${n.id}`)), 'no firewall table of the nodes');
  t.notOk(existsSync(dir), 'the cluster directory is gone');
});
