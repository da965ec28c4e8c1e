// Images through the grid on a `zone cluster` of 2 nodes (namespaces, routes with mutual
// TLS, each node's own appliance), with an image of ~100 MiB (the busybox rootfs and
// 100 MiB of random bytes):
//  push:  `zone image push` from the host to node 1 (parts over HTTP, the whole archive
//         checked, then stored in the grid's JetStream store, 2 copies), against a raw TCP
//         copy of the same file from the host into node 1's namespace;
//  fetch: blueprint -> running on node 2 for the image not yet on it (fetched from the
//         grid, checked, loaded) against the same blueprint once the image is there; and
//         the fetch + check + load part of it against a raw TCP copy of the archive from
//         node 1's namespace to node 2's plus a `docker load` of it.
// Run (takes /tmp/zone-cluster.lock): node --import tsx bench/images.ts [MiB, default 100] [rounds, default 2]
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { workloadId } from '../drivers/names.ts';
import { readSigningKey } from '../blueprints/keys.ts';
import type { Blueprint } from '../blueprints/schema.ts';
import { signBlueprint } from '../blueprints/sign.ts';
import { NodeClient } from '../cli/client.ts';
import { clusterDown, clusterUp, removeNodeContainers, type ClusterState } from '../cli/cluster/grid.ts';
import { pushArchive } from '../cli/commands/image.ts';
import { buildImageArchive, removeImage } from '../test/helpers/image-archive.ts';
import { waitFor } from '../test/helpers/wait.ts';

const run = promisify(execFile);
const MIB = Number.parseInt(process.argv[2] ?? '100', 10);
const ROUNDS = Number.parseInt(process.argv[3] ?? '2', 10);
const base = await mkdtemp('/var/tmp/zone-bench-images-');
const dir = join(base, 'cluster');
let state: ClusterState | null = null;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = async (fn: () => Promise<unknown>) => {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
};

/** Seconds to copy `file` over TCP into `to`'s namespace (a listener there reads it to its end), from the host or from `from`'s namespace. */
async function tcpCopy(file: string, to: { namespace: string; address: string }, from?: { namespace: string }): Promise<number> {
  const port = 9077;
  const listener = spawn('ip', ['netns', 'exec', to.namespace, process.execPath, '-e',
    `require('net').createServer((s) => { s.resume(); s.on('end', () => { console.log('done'); process.exit(0); }); }).listen(${port}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  listener.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n')));
  await waitFor(() => lines.includes('up'), { timeoutMs: 10_000, what: 'the listener' });
  const sender = `const s = require('net').connect(${port}, '${to.address}', () => require('fs').createReadStream('${file}').pipe(s));`;
  const start = performance.now();
  if (from) await run('ip', ['netns', 'exec', from.namespace, process.execPath, '-e', sender]);
  else await run(process.execPath, ['-e', sender]);
  await waitFor(() => lines.includes('done'), { timeoutMs: 120_000, what: 'the copy' });
  return (performance.now() - start) / 1000;
}

try {
  const image = await buildImageArchive(base, `zone-bench/images-${process.pid}:1`, randomBytes(MIB * 2 ** 20));
  const size = (await stat(image.path)).size;
  state = await clusterUp({ dir, name: 'bimg', subnet: '10.214.11.0/24', count: 2 });
  const [n1, n2] = state.nodes as [ClusterState['nodes'][number], ClusterState['nodes'][number]];
  const operator = readSigningKey(state.operatorKey);
  const owner = operator.publicKey;
  const client1 = new NodeClient(n1.api, state.operatorKey);
  const client2 = new NodeClient(n2.api, state.operatorKey);
  const mibps = (s: number) => `${(size / 2 ** 20 / s).toFixed(1)} MiB/s`;

  // Push: the first stores, a push again only uploads and checks (the grid has it): both timed.
  const pushes: number[] = [];
  const copies: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    copies.push(await tcpCopy(image.path, n1));
    pushes.push(await seconds(() => pushArchive(client1, operator, image.path, { label: 'bench' })));
  }
  console.log(`archive: ${(size / 2 ** 20).toFixed(1)} MiB, ${image.digest}`);
  const again = median(pushes.slice(1));
  console.log(`raw TCP copy host -> node 1: median ${median(copies).toFixed(2)} s (${mibps(median(copies))})`);
  console.log(`push host -> node 1, stored in the grid: ${pushes[0]!.toFixed(2)} s (${mibps(pushes[0]!)}); ratio ${(pushes[0]! / median(copies)).toFixed(1)}x`);
  if (pushes.length > 1) console.log(`push again (uploaded and checked; the grid has it): median ${again.toFixed(2)} s (${mibps(again)}); ratio ${(again / median(copies)).toFixed(1)}x`);

  // Blueprint -> running on node 2: the image missing (fetched from the grid) vs there.
  const running = async (name: string, version: number) => {
    const bp = signBlueprint({ name, version, owner, node: n2.id!, workloads: [{ name: 'app', kind: 'container', image: `${image.tag}@${image.digest}`, command: ['sleep', '600'] }] } as Blueprint, operator.secretKey);
    return seconds(async () => {
      await client2.submit(bp);
      await waitFor(async () => (await client2.blueprint(name)).workloads.every((w) => w.state === 'running') || null, { timeoutMs: 300_000, what: `${name} running`, intervalMs: 50 });
    });
  };
  const gone = async (name: string, version: number) => {
    await client2.submit(signBlueprint({ name, version, owner, node: n2.id!, delete: true } as Blueprint, operator.secretKey));
    await waitFor(() => run('docker', ['inspect', workloadId(n2.id!, owner, name, 'app')]).then(() => false, () => true), { timeoutMs: 60_000, what: `${name} removed` });
  };
  // A first workload of the owner on node 2 (its /zone storage is made then): not measured.
  await removeImage(image.digest);
  await running('warmup', 1);
  await gone('warmup', 2);
  const missing: number[] = [];
  const present: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await removeImage(image.digest);
    missing.push(await running(`miss${round}`, 1));
    present.push(await running(`hit${round}`, 1));
    await gone(`miss${round}`, 2);
    await gone(`hit${round}`, 2);
    await removeImage(image.digest);
    const copy = await tcpCopy(image.path, n2, n1);
    const load = await seconds(() => run('docker', ['load', '-i', image.path]));
    baseline.push(copy + load);
  }
  const fetch = median(missing) - median(present);
  console.log(`blueprint -> running on node 2: image missing ${median(missing).toFixed(2)} s, image there ${median(present).toFixed(2)} s (medians of ${ROUNDS})`);
  console.log(`fetch + check + load: ${fetch.toFixed(2)} s (${mibps(fetch)}); raw TCP copy node 1 -> node 2 + docker load: ${median(baseline).toFixed(2)} s; ratio ${(fetch / median(baseline)).toFixed(1)}x`);
  await removeImage(image.digest);
} finally {
  if (state) {
    await clusterDown(dir).catch((err: unknown) => console.error('cluster down failed', err));
    await removeNodeContainers(state.nodes.flatMap((n) => (n.id ? [n.id] : []))).catch(() => undefined);
  }
  await rm(base, { recursive: true, force: true });
}
