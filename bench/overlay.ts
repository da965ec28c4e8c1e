// Overlay benchmark, baselines in the same run: TCP throughput and round-trip latency
// between two node namespaces (a) over the raw veth that joins them, (b) over raw
// WireGuard between the same two namespaces, set up by hand as a user would without
// Zone (the same implementation, its defaults, `wg set` and `ip`), (c) over the overlay
// the driver builds on top of that veth (kernel or wireguard-go, as fingerprint()
// reports). (b) and (c) alternate `rounds` times, so that a change of load on a shared
// machine falls on both; the ratio that says what Zone costs is (c)/(b).
// The measuring peers are this file run in each namespace.
// Run: node --import tsx bench/overlay.ts [seconds per throughput run, default 2] [rounds, default 5] [underlay MTU, default 1500]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const PORT = 5201;
const ROUNDS = 2000;

/** Server role: 'T' connections are drained and answered with the byte count; 'P' ones are echoed. */
function serve(): void {
  createServer((socket) => {
    let mode: string | null = null;
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      mode ??= String.fromCharCode(chunk[0]!);
      if (mode === 'P') socket.write(chunk);
      else bytes += chunk.length;
    });
    socket.on('end', () => socket.end(mode === 'T' ? `${bytes - 1}\n` : ''));
  }).listen(PORT, '0.0.0.0', () => process.stdout.write('ready\n'));
}

const connected = (host: string) => new Promise<Socket>((resolve, reject) => {
  const s = connect(PORT, host, () => resolve(s)).once('error', reject);
  s.setNoDelay(true);
});

/** Client role: writes for `seconds`, then pings ROUNDS times; prints JSON. */
async function measure(host: string, seconds: number): Promise<void> {
  const t = await connected(host);
  const chunk = Buffer.alloc(1 << 16);
  const start = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  t.write('T');
  while (Date.now() < deadline) {
    if (!t.write(chunk)) await new Promise((r) => t.once('drain', r));
  }
  const reply = new Promise<string>((resolve) => { let s = ''; t.on('data', (d) => { s += d; }).on('end', () => resolve(s)); });
  t.end();
  const received = Number((await reply).trim());
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;

  const p = await connected(host);
  p.write('P');
  await new Promise((r) => p.once('data', r));
  const rtts: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    p.write('x');
    await new Promise((r) => p.once('data', r));
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  p.end();
  rtts.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ mbitPerS: (received * 8) / elapsed / 1e6, rttMedianUs: rtts[Math.floor(ROUNDS / 2)], rttP99Us: rtts[Math.floor(ROUNDS * 0.99)] }) + '\n');
}

const inNs = (ns: string, args: string[]) => ['nsenter', `--net=/var/run/netns/${ns}`, '--', process.execPath, '--import', 'tsx', SELF, ...args];

type Result = { mbitPerS: number; rttMedianUs: number; rttP99Us: number };

async function between(serverNs: string, clientNs: string, host: string, seconds: number): Promise<Result> {
  const [file, ...args] = inNs(serverNs, ['serve']) as [string, ...string[]];
  const server: ChildProcess = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    const [cf, ...cargs] = inNs(clientNs, ['measure', host, String(seconds)]) as [string, ...string[]];
    const { stdout } = await run(cf, cargs, { timeout: (seconds + 60) * 1000 });
    return JSON.parse(stdout) as Result;
  } finally {
    server.kill('SIGKILL');
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const medianOf = (rs: Result[]): Result => ({
  mbitPerS: median(rs.map((r) => r.mbitPerS)), rttMedianUs: median(rs.map((r) => r.rttMedianUs)), rttP99Us: median(rs.map((r) => r.rttP99Us)),
});

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? '2');
  const rounds = Number(process.argv[3] ?? '5');
  const underlayMtu = process.argv[4] ?? '1500';
  const { WireguardDriver } = await import('../drivers/wireguard/driver.ts');
  const { generateWireguardKeyPair } = await import('../drivers/wireguard/keys.ts');
  const { planGrid } = await import('../cli/grid-plan.ts');
  const { networkId } = await import('../drivers/names.ts');
  const { generateBoxKeyPair, openSealed } = await import('../blueprints/seal.ts');
  const { pollUntil, processRuns, stopProcess } = await import('../lib/processes.ts');
  const { runCommand, throughPipe } = await import('../lib/exec.ts');
  const sh = (...cmd: string[]) => run(cmd[0]!, cmd.slice(1));
  const tag = `zbov${process.pid % 100000}`;
  const nodes = [1, 2].map((i) => ({
    id: `${tag}n${i}`, ns: `${tag}-${i}`, ip: `192.168.215.${i}`, box: generateBoxKeyPair(),
    // The raw baseline's interface, keys and address: another port and range on the same veth.
    raw: { iface: `${tag}w${i}`, keys: generateWireguardKeyPair(), address: `10.216.0.${i}`, pid: 0 },
  }));
  const dir = await mkdtemp(join(tmpdir(), 'zone-bench-overlay-'));
  const drivers = nodes.map((n) => new WireguardDriver(
    { node: n.id, dataDir: join(dir, n.id), openSecret: (s, place) => openSealed(s, n.box.secretKey, { ...place, node: n.id }) }, { underlayNamespace: n.ns }));
  const owner = 'ed25519:' + Buffer.alloc(32, 1).toString('base64');
  const grid = planGrid({ network: 'bench', owner, blueprint: 'bench', ipRange: '10.215.0.0/16', nodes: nodes.map((n) => ({ id: n.id, boxKey: n.box.publicKey, endpoint: `${n.ip}:51820` })) });
  const specs = grid.map((g, i) => {
    const identity = { node: nodes[i]!.id, owner, blueprint: 'bench', network: 'bench' };
    return { ...identity, id: networkId(identity), definition: g.network };
  });
  try {
    for (const n of nodes) {
      await sh('ip', 'netns', 'add', n.ns);
      await sh('ip', '-n', n.ns, 'link', 'set', 'lo', 'up');
    }
    await sh('ip', '-n', nodes[0]!.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nodes[1]!.ns);
    for (const n of nodes) {
      await sh('ip', '-n', n.ns, 'addr', 'add', `${n.ip}/24`, 'dev', 'eth0');
      await sh('ip', '-n', n.ns, 'link', 'set', 'eth0', 'mtu', underlayMtu, 'up');
    }
    const implementation = (await drivers[0]!.fingerprint()).details.implementation;
    // (b) by hand, before the driver touches the host: the interface in the node namespace
    // itself, configured the way WireGuard's documentation shows, with the host as found.
    const hostReceiveBuffer = (await readFile('/proc/sys/net/core/rmem_default', 'utf8')).trim();
    for (const [i, n] of nodes.entries()) {
      const peer = nodes[1 - i]!;
      if (implementation === 'kernel') {
        await sh('ip', '-n', n.ns, 'link', 'add', n.raw.iface, 'type', 'wireguard');
      } else {
        // In a session of its own, as `wireguard-go IFACE` daemonises itself and as the driver
        // starts it: the scheduler's autogroups share the CPU between sessions, and on a busy
        // machine that placement alone moved this baseline by 2x.
        const child = spawn('nsenter', [`--net=/var/run/netns/${n.ns}`, '--', 'wireguard-go', '-f', n.raw.iface], { stdio: 'ignore', detached: true });
        n.raw.pid = child.pid!;
        if (!await pollUntil(() => existsSync(`/var/run/wireguard/${n.raw.iface}.sock`), 10_000, 20)) throw new Error(`wireguard-go ${n.raw.iface} did not start`);
      }
      await runCommand(throughPipe(['ip', 'netns', 'exec', n.ns, 'wg', 'set', n.raw.iface, 'listen-port', '51821', 'private-key', '/dev/stdin']), { input: `${n.raw.keys.privateKey}\n` });
      await sh('ip', 'netns', 'exec', n.ns, 'wg', 'set', n.raw.iface, 'peer', peer.raw.keys.publicKey, 'endpoint', `${peer.ip}:51821`, 'allowed-ips', `${peer.raw.address}/32`);
      await sh('ip', '-n', n.ns, 'addr', 'add', `${n.raw.address}/24`, 'dev', n.raw.iface);
      await sh('ip', '-n', n.ns, 'link', 'set', n.raw.iface, 'up');
    }
    await Promise.all(drivers.map((d, i) => d.ensure(specs[i]!)));

    const raw = await between(nodes[1]!.ns, nodes[0]!.ns, nodes[1]!.ip, seconds);
    const byHand: Result[] = [];
    const overlay: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      byHand.push(await between(nodes[1]!.ns, nodes[0]!.ns, nodes[1]!.raw.address, seconds));
      overlay.push(await between(specs[1]!.id, specs[0]!.id, '10.215.1.1', seconds));
    }
    const row = (name: string, r: Result) => `${name.padEnd(34)} ${r.mbitPerS.toFixed(0).padStart(8)} Mbit/s   rtt median ${r.rttMedianUs.toFixed(0).padStart(5)} us   p99 ${r.rttP99Us.toFixed(0).padStart(6)} us`;
    const ratios = (what: string, a: Result, b: Result) => `ratios ${what}: throughput ${(a.mbitPerS / b.mbitPerS).toFixed(3)}x, rtt median ${(a.rttMedianUs / b.rttMedianUs).toFixed(2)}x, rtt p99 ${(a.rttP99Us / b.rttP99Us).toFixed(2)}x`;
    console.log(`overlay benchmark: ${seconds}s of TCP per path, ${ROUNDS} one-byte round trips, (b) and (c) alternating ${rounds} times (medians); underlay MTU ${underlayMtu}; WireGuard implementation: ${implementation}; host net.core.rmem_default when (b) started: ${hostReceiveBuffer}`);
    console.log(row('(a) raw veth', raw));
    for (const [r, b] of byHand.entries()) console.log(row(`(b) ${implementation} by hand, round ${r + 1}`, b));
    for (const [r, c] of overlay.entries()) console.log(row(`(c) overlay, round ${r + 1}`, c));
    const b = medianOf(byHand);
    const c = medianOf(overlay);
    console.log(row(`(b) ${implementation} by hand`, b));
    console.log(row(`(c) overlay (${implementation})`, c));
    console.log(ratios('overlay/by hand (c/b)', c, b));
    console.log(ratios('overlay/raw veth (c/a)', c, raw));
  } finally {
    for (const n of nodes) if (n.raw.pid) await stopProcess(n.raw.pid, () => processRuns(n.raw.pid), 2000, 20).catch(() => undefined);
    for (const [i, d] of drivers.entries()) await d.remove(specs[i]!.id).catch(() => undefined);
    for (const n of nodes) await sh('ip', 'netns', 'del', n.ns).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const [role, ...rest] = process.argv.slice(2);
if (role === 'serve') serve();
else if (role === 'measure') await measure(rest[0]!, Number(rest[1]));
else await main();
