// A VM's piped stdin and stdout through the real libvirtd (TCG is fine): attach() gives the
// command's stdio on its virtio-serial ports, byte-exact both ways, EOF both ways, held
// from the start, and again for the next boot. Run it under `flock /tmp/zone-vm.lock`.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { buffer } from 'node:stream/consumers';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `lvstdio-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:stdio-owner';
const dataDir = mkdtempSync('/var/tmp/zone-lvstdio-');
chmodSync(dataDir, 0o711);
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => { throw new Error('no secrets here'); } };
const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
const created: string[] = [];

t.teardown(async () => {
  for (const id of created) await driver.remove(id).catch(() => undefined);
  await driver.close();
  for (const id of created) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

function piped(workload: string, command: string[], streams: { stdin?: 'pipe'; stdout?: 'pipe' }): WorkloadSpec {
  const definition = { ...normalizeWorkload({ name: workload, kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' }, command }), ...streams };
  const id = workloadId(NODE, OWNER, 'stdio', workload);
  created.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'stdio', workload, id, specHash: specHash(definition), definition };
}

/** Every byte value, then random bytes: 256 KiB in all. */
function input(): Buffer {
  return Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(256 * 1024 - 256)]);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function exitedOf(id: string) {
  return waitFor(async () => {
    const o = await driver.inspect(id);
    return o?.state === 'exited' && o;
  }, { timeoutMs: 30_000, what: `VM ${id} powered off` });
}

t.test('cat in a VM: what goes into its stdin port comes out of its stdout port, every byte value, in order; EOF in ends cat, cat\'s end ends the stdout', async (t) => {
  const spec = piped('cat', ['cat'], { stdin: 'pipe', stdout: 'pipe' });
  const started = await driver.ensure(spec);
  t.equal(driver.capabilities.attach, true);
  const io = await driver.attach(spec.id, { replay: true });
  t.equal(io.startedAt, started.startedAt, 'the incarnation ensure() started');
  t.equal(io.exact, true, 'held since its start');
  const sent = input();
  const received = buffer(io.stdout);
  io.stdin.end(sent);
  const got = await received;
  t.equal(got.length, sent.length, 'as many bytes');
  t.equal(sha(got), sha(sent), 'the same bytes');
  t.match(await exitedOf(spec.id), { exitCode: 0, startedAt: started.startedAt });

  // The next boot is another incarnation, held from its start again.
  const again = await driver.ensure(spec);
  t.not(again.startedAt, started.startedAt, 'a new incarnation id per boot');
  const io2 = await driver.attach(spec.id, { replay: true });
  t.equal(io2.startedAt, again.startedAt);
  const received2 = buffer(io2.stdout);
  io2.stdin.end('second boot\n');
  t.equal((await received2).toString(), 'second boot\n');
  t.match(await exitedOf(spec.id), { exitCode: 0 });
});

t.test('a VM writes before anyone attaches: its stdout is held from the start, nothing is lost; attached for stdin alone it ends with the VM', async (t) => {
  const spec = piped('talker', ['sh', '-c', 'seq 1 20000; read -r word; echo "got $word"; exit 7'], { stdin: 'pipe', stdout: 'pipe' });
  await driver.ensure(spec);
  const stdinOnly = await driver.attach(spec.id, { stdin: true, stdout: false });
  const output = await driver.attach(spec.id, { stdin: false, replay: true });
  await t.rejects(driver.attach(spec.id, { stdin: false, replay: true }), /not held since its start/, 'one reader of a held stdout');
  const received = buffer(output.stdout);
  const ended = buffer(stdinOnly.stdout);
  stdinOnly.stdin.end('zone\n');
  const expected = `${Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('')}got zone\n`;
  t.equal((await received).toString(), expected, 'every line, in order, then the answer');
  t.equal((await ended).length, 0, 'the stdin attach\'s stdout carries nothing and ends');
  t.match(await exitedOf(spec.id), { exitCode: 7 });
});

t.test('without virtio_console beside the kernel the driver declares no attach (pipes report it) and says why', async (t) => {
  const bare = new LibvirtDriver(ctx, { kernel: `${dataDir}/vmlinuz`, accelerator: 'tcg' });
  t.teardown(() => bare.close());
  t.match(bare.capabilities, { attach: false, console: true });
  t.match(await bare.fingerprint(), { capabilities: { attach: false }, details: { attachProblem: /virtio_console\.ko for the VMs' stdio ports .*VMs cannot be pipe ends/ } });
});
