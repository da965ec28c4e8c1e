// Hostile bodies against a real node (Docker driver, nats-server, a container with its
// /zone): each is refused within the parse pool's bounds, and while it is being parsed the
// API and the FUSE handlers inside a running container keep answering, because parsing
// happens in the API's worker threads, not on the thread that serves them. The bounds on
// answer times are generous: this machine runs other suites at once, which delays any
// thread by hundreds of milliseconds now and then; a parse on the serving thread under
// such load stalls it for longer (the YAML bodies take the workers up to seconds then).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { createAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { buildServer } from '../../api/server.ts';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import { HOSTILE_BODIES } from '../helpers/hostile-bodies.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';

// Each body is sent again and again for this long (at least 3 times): the window the
// container's probe (every 20 ms) and /healthz are measured in.
const WINDOW_MS = 300;
/** What no answer of the serving thread (/healthz, a FUSE lookup) may take meanwhile. */
const ANSWER_MS = 2_000;

const dir = mkdtempSync(join(tmpdir(), 'zone-hostile-'));
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  pseudokernel: {},
});
appliance.start();
const server = await buildServer(appliance, { rateLimit: false });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
const nodeId = appliance.identity.id;
t.teardown(async () => {
  await server.close();
  await appliance.close();
  await removeNodeContainers([nodeId]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** Seconds since boot, the clock the container's probe reads too (/proc/uptime is not namespaced). */
const uptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);

// Looks up a new name in /zone/self every 20 ms with shell builtins only (no fork inside
// the measurement), printing when each lookup began and ended. /zone/self is answered
// from memory by the appliance's thread: the lookup measures that thread, not NATS.
const PROBE = 'i=0; while true; do read a x < /proc/uptime; [ -e /zone/self/probe-$i ]; read b x < /proc/uptime; echo "probe $a $b"; i=$((i+1)); usleep 20000; done';

t.test('hostile bodies are refused within the parse pool\'s bounds, while /healthz and a FUSE stat in a container keep answering', async (t) => {
  const probe = signBlueprint({
    name: 'probe', version: 1, owner: operator.publicKey, node: nodeId,
    workloads: [{ name: 'stat', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', PROBE] }],
  } as Blueprint, operator.secretKey);
  const submitted = await fetch(`${url}/v1/blueprints/probe`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(probe) });
  t.equal(submitted.status, 202, 'the probe blueprint is accepted through the API');
  const probeLines = async () => [...(await text(await appliance.logs('probe', 'stat', { follow: false }))).matchAll(/^probe ([\d.]+) ([\d.]+)$/gm)]
    .map((m) => ({ start: Number(m[1]), end: Number(m[2]) }));
  await waitFor(async () => (await probeLines()).length >= 3, { timeoutMs: 60_000, what: 'the container probing its /zone' });

  const windows: { what: string; start: number; end: number }[] = [];
  for (const hostile of HOSTILE_BODIES) {
    let stop = false;
    const health: number[] = [];
    const prober = (async () => {
      while (!stop) {
        const t0 = performance.now();
        const res = await fetch(`${url}/healthz`);
        await res.arrayBuffer();
        health.push(performance.now() - t0);
      }
    })();
    const start = uptime();
    const windowStart = performance.now();
    const answers: { status: number; ms: number; error: string }[] = [];
    while (answers.length < 3 || performance.now() - windowStart < WINDOW_MS) {
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/blueprints/x`, { method: 'PUT', headers: { 'content-type': hostile.type }, body: hostile.body });
      const body = await res.json() as { error: string; message: string };
      answers.push({ status: res.status, ms: performance.now() - t0, error: `${body.error}: ${body.message}` });
    }
    const end = uptime();
    stop = true;
    await prober;
    windows.push({ what: hostile.what, start, end });
    const slowest = Math.max(...answers.map((a) => a.ms));
    t.comment(`${hostile.what}: ${answers[0]!.status} ${answers[0]!.error}; slowest answer ${slowest.toFixed(0)} ms; /healthz ${health.length}x, slowest ${Math.max(...health).toFixed(1)} ms`);
    // Not 503 (a parse cut off by the pool's time bound) nor 429 (its queue full).
    t.ok(answers.every((a) => a.status === 400 || a.status === 413), `${hostile.what}: refused as invalid or too large (400/413), slowest in ${slowest.toFixed(0)} ms`);
    t.notOk(answers.some((a) => a.error.includes('1: 1') || a.error.includes('lol')), `${hostile.what}: the refusal does not quote the text`);
    t.ok(health.length > 0 && Math.max(...health) <= ANSWER_MS, `${hostile.what}: /healthz answered within ${ANSWER_MS} ms meanwhile`);
  }

  // The probe's lines come through the container's log: wait until it has passed the last window.
  const last = windows.at(-1)!.end;
  const lines = await waitFor(async () => { const all = await probeLines(); return all.some((p) => p.start > last) && all; }, { timeoutMs: 30_000, what: 'probe lines after the last window' });
  const quiet = lines.filter((p) => p.end < windows[0]!.start);
  t.comment(`FUSE lookups before the hostile bodies: ${quiet.length}, slowest ${(Math.max(...quiet.map((p) => p.end - p.start)) * 1000).toFixed(0)} ms`);
  for (const w of windows) {
    const during = lines.filter((p) => p.end >= w.start && p.start <= w.end);
    const slowest = Math.max(...during.map((p) => p.end - p.start));
    t.ok(during.length > 0 && slowest <= ANSWER_MS / 1000, `${w.what}: ${during.length} FUSE lookups in the container meanwhile, slowest ${(slowest * 1000).toFixed(0)} ms (/proc/uptime counts in 10 ms)`);
  }
  t.same(appliance.listBlueprints().map((b) => `${b.name}@${b.version}`), ['probe@1'], 'nothing refused changed the node');
});
