// The operator workflow end to end: keygen -> sign -> apply -> status -> logs ->
// events -> delete, with the real `zone` command against a real appliance process
// running the Docker driver.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ZONE = join(ROOT, 'cli/zone.sh');

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('keygen, sign, apply, status, logs, events, delete against a node with the Docker driver', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zone-e2e-cli-'));
  const dataDir = join(dir, 'node');
  mkdirSync(dataDir, { mode: 0o700 });
  let nodeId = '';
  t.teardown(async () => {
    if (nodeId) await removeNodeContainers([nodeId]);
    rmSync(dir, { recursive: true, force: true });
  });

  const keyFile = join(dir, 'operator.json');
  const keygen = await run(ZONE, ['keygen', '--out', keyFile]);
  t.equal(keygen.code, 0, keygen.stderr);
  const publicKey = keygen.stdout.trim();
  t.match(publicKey, /^ed25519:/);
  writeFileSync(join(dataDir, 'trust-policy.json'), JSON.stringify({ signers: [{ key: publicKey, weight: 1, label: 'operator' }], threshold: 1 }));

  // Its nats-server on a free port, not the default 4222 another test file's node may hold.
  const [natsPort] = await freeLoopbackPorts(1);
  const appliance = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'api/main.ts')], {
    cwd: ROOT, env: { ...process.env, ZONE_DATA_DIR: dataDir, ZONE_LISTEN: '127.0.0.1:0', ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}`, ZONE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => appliance.once('exit', resolve));
  t.teardown(async () => {
    appliance.kill('SIGTERM');
    await exited;
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: appliance.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) resolve(m[1]!);
    });
    appliance.once('exit', (code) => reject(new Error(`appliance exited (${code})`)));
  });
  const env = { ZONE_NODE: url };

  const node = await run(ZONE, ['node', '--json'], env);
  t.equal(node.code, 0, node.stderr);
  const info = JSON.parse(node.stdout) as { id: string; drivers: { kind: string; available: boolean }[] };
  nodeId = info.id;
  t.match(info.drivers, [{ kind: 'container', available: true }]);

  const name = `e2e-cli-${process.pid}`;
  const file = join(dir, 'blueprint.yaml');
  writeFileSync(file, [
    `name: ${name}`, 'version: 1', `owner: "${publicKey}"`, `node: ${nodeId}`,
    'workloads:',
    '  - name: clock',
    '    kind: container',
    '    image: zone/busybox',
    '    command: [sh, -c, "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]',
    '    resources: { cpus: 0.1, memory: 16Mi }',
    '',
  ].join('\n'));
  const signed = join(dir, 'signed.yaml');
  const sign = await run(ZONE, ['sign', file, '--key', keyFile, '--out', signed]);
  t.equal(sign.code, 0, sign.stderr);

  const apply = await run(ZONE, ['apply', signed], env);
  t.equal(apply.code, 0, apply.stderr);
  t.match(apply.stdout, `${name}: v1 accepted`);
  t.match(apply.stdout, /clock +container +running/);
  t.match(apply.stdout, `${name}: all workloads running`);

  const status = await run(ZONE, ['status', name, '--json'], env);
  t.match(JSON.parse(status.stdout), { name, version: 1, workloads: [{ workload: 'clock', state: 'running' }] });
  const table = await run(ZONE, ['status'], env);
  t.match(table.stdout, new RegExp(`│ ${name} +│ 1 +│ clock +│ container │ running`));

  await waitFor(async () => /tick 3/.test((await run(ZONE, ['logs', `${name}/clock`], env)).stdout), { timeoutMs: 20_000, what: 'three ticks in the logs' });
  const tail = await run(ZONE, ['logs', `${name}/clock`, '--tail', '2'], env);
  t.equal(tail.code, 0, tail.stderr);
  t.equal(tail.stdout.trim().split('\n').length, 2, 'two lines with --tail 2');

  // -f streams as the workload writes, not when the stream ends.
  const follow = spawn(ZONE, ['logs', '-f', '--tail', '1', `${name}/clock`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const followed = new Promise((resolve) => follow.once('exit', resolve));
  t.teardown(async () => {
    follow.kill('SIGTERM');
    await followed;
  });
  let streamed = '';
  follow.stdout!.on('data', (chunk: Buffer) => { streamed += String(chunk); });
  await waitFor(() => (streamed.match(/tick \d+\n/g) ?? []).length >= 4, { timeoutMs: 20_000, what: 'four lines followed' });
  const ticks = (streamed.match(/tick (\d+)/g) ?? []).map((l) => Number(l.split(' ')[1]));
  t.same(ticks.slice(1), ticks.slice(1).map((_, i) => ticks[0]! + i + 1), 'consecutive lines as they come');
  follow.kill('SIGTERM');

  const events = await run(ZONE, ['events', '--blueprint', name], env);
  t.match(events.stdout, `${name} - -> v1: version 1 accepted, signed by operator`);
  t.match(events.stdout, `${name}/clock pending -> running`);

  const replay = await run(ZONE, ['apply', signed, '--detach'], env);
  t.equal(replay.code, 1, 'a refusal exits 1');
  t.equal(replay.stderr, 'zone: refused (409 STALE): /version: version 1 is not greater than the stored version 1 (a replay or an older blueprint)\n');
  t.equal((await run(ZONE, ['logs', 'no-slash'], env)).code, 2, 'a usage mistake exits 2');
  const unreachable = await run(ZONE, ['status', '--node', 'http://127.0.0.1:39'], env);
  t.equal(unreachable.code, 3, 'an unreachable node exits 3');
  t.match(unreachable.stderr, /^zone: cannot reach the node at http:\/\/127\.0\.0\.1:39 \(ECONNREFUSED\)\n$/);

  const del = await run(ZONE, ['delete', name, '--key', keyFile], env);
  t.equal(del.code, 0, del.stderr);
  t.match(del.stdout, `${name}: tombstone v2 accepted`);
  t.match(del.stdout, `${name}: removed`);
  t.equal((await run('docker', ['ps', '-aq', '--filter', `label=zone.blueprint=${name}`])).stdout, '', 'the container is gone');
  t.match(JSON.parse((await run(ZONE, ['status', name, '--json'], env)).stdout), { version: 2, deleted: true, workloads: [] });
});
