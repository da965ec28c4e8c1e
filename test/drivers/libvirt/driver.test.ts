// Against the real libvirtd (qemu:///system, TCG is fine): a zone/busybox VM boots through
// the driver, is watched, restarted, adopted by a fresh driver, attached to, removed.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { DriverContext, DriverEvent, WorkloadSpec } from '../../../drivers/contract.ts';
import { METADATA_NS } from '../../../drivers/libvirt/domain-xml.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 120_000;
const NODE = `lvdrv-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:test-owner';
const dataDir = mkdtempSync('/var/tmp/zone-lvdrv-');
chmodSync(dataDir, 0o711);
const ctx: DriverContext = { node: NODE, dataDir, openSecret: (v) => (v === 'sealed:token' ? 'clear-token' : '') };

function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });
}
function virshQuiet(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout };
}

const created: string[] = [];
function spec(workload: string, w: Partial<Workload>): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' }, ...w } as Workload);
  const id = workloadId(NODE, OWNER, 'lvdrv', workload);
  created.push(id);
  return { node: NODE, owner: OWNER, blueprint: 'lvdrv', workload, id, specHash: specHash(definition), definition };
}

t.teardown(() => {
  for (const id of created) {
    virshQuiet('destroy', id);
    virshQuiet('undefine', id);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

async function consoleOf(driver: LibvirtDriver, id: string): Promise<string> {
  let text = '';
  for await (const chunk of await driver.logs(id, { follow: false })) text += String(chunk);
  return text;
}
const count = (text: string, needle: string): number => text.split(needle).length - 1;

t.test('fingerprint probes the accelerator', async (t) => {
  const driver = new LibvirtDriver(ctx);
  t.teardown(() => driver.close());
  const fp = await driver.fingerprint();
  t.equal(fp.available, true);
  t.equal(fp.kind, 'vm');
  t.ok(['kvm', 'tcg'].includes(String(fp.details.accelerator)), `accelerator ${fp.details.accelerator}: ${fp.details.acceleratorReason}`);
  t.equal(fp.details.kernelPresent, true);
});

t.test('a busybox VM boots, is watched, restarted, adopted, attached and removed', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const events: DriverEvent[] = [];
  const unwatch = driver.watch((e) => events.push(e));
  t.teardown(unwatch);

  const s = spec('echo', {
    command: ['sh', '-c', 'echo "token=$TOKEN"; while read line; do echo "got:$line"; done'],
    env: { TOKEN: 'sealed:token' },
  });
  const observed = await driver.ensure(s);
  t.match(observed, { id: s.id, kind: 'vm', state: 'running', node: NODE, blueprint: 'lvdrv', workload: 'echo', specHash: s.specHash });
  await waitFor(async () => (await consoleOf(driver, s.id)).includes('zone: started echo'), { timeoutMs: BOOT_MS, what: 'the guest marker' });
  await waitFor(async () => (await consoleOf(driver, s.id)).includes('token=clear-token'), { timeoutMs: 30_000, what: 'the command output' });
  t.pass('the sealed env value was opened for the guest');

  t.match(await driver.inspect(s.id), { state: 'running' });
  t.ok(virsh('list', '--name').split('\n').includes(s.id), 'virsh list shows it');
  const meta = virsh('metadata', s.id, METADATA_NS);
  t.match(meta, `<node>${NODE}</node>`);
  t.match(meta, `<spec-hash>${s.specHash}</spec-hash>`);

  await t.test('ensure on a running VM changes nothing', async (t) => {
    const domid = virsh('domid', s.id).trim();
    t.match(await driver.ensure(s), { state: 'running' });
    t.equal(virsh('domid', s.id).trim(), domid);
  });

  await t.test('attach is the serial console: stdin in, stdout out', async (t) => {
    const { stdin, stdout } = await driver.attach(s.id);
    let seen = '';
    stdout.on('data', (chunk: Buffer) => { seen += chunk.toString(); });
    stdin.write('ping\n');
    await waitFor(() => seen.includes('got:ping'), { timeoutMs: 60_000, what: 'the echo through the console' });
    stdin.end();
    stdout.destroy();
    t.pass('echoed');
  });

  await t.test('logs give the tail', async (t) => {
    const lines = (await consoleOf(driver, s.id)).trimEnd().split('\n');
    let tail = '';
    for await (const chunk of await driver.logs(s.id, { follow: false, tail: 1 })) tail += String(chunk);
    t.equal(tail.trimEnd(), lines.at(-1)?.trimEnd());
  });

  await t.test('destroyed behind its back: exited event, ensure starts it again', async (t) => {
    virsh('destroy', s.id);
    await waitFor(() => events.find((e) => e.type === 'exited' && e.id === s.id), { timeoutMs: 15_000, what: 'the exited event' });
    t.match(await driver.inspect(s.id), { state: 'exited' });
    await driver.ensure(s);
    await waitFor(() => events.find((e) => e.type === 'started' && e.id === s.id), { timeoutMs: 15_000, what: 'the started event' });
    await waitFor(async () => count(await consoleOf(driver, s.id), 'zone: started echo') === 2, { timeoutMs: BOOT_MS, what: 'the second boot' });
    t.pass('booted again');
  });

  await t.test('a fresh driver (appliance restart) adopts it without a reboot', async (t) => {
    const domid = virsh('domid', s.id).trim();
    const fresh = new LibvirtDriver(ctx);
    t.teardown(() => fresh.close());
    const listed = await fresh.list(NODE);
    t.match(listed.find((o) => o.id === s.id), { state: 'running', workload: 'echo', specHash: s.specHash });
    t.equal((await fresh.list('another-node')).length, 0, 'other nodes see none of ours');
    t.match(await fresh.ensure(s), { state: 'running' });
    t.equal(virsh('domid', s.id).trim(), domid, 'same domain id: not restarted');
    t.equal(count(await consoleOf(fresh, s.id), 'zone: started echo'), 2, 'no extra boot');
  });

  await t.test('stop is graceful: the command gets TERM and the guest powers off within the grace', async (t) => {
    const began = Date.now();
    await driver.stop(s.id, 60_000);
    t.ok(Date.now() - began < 60_000, `stopped in ${Date.now() - began} ms`);
    t.match(await driver.inspect(s.id), { state: 'exited', exitCode: 143 });
    t.match(await consoleOf(driver, s.id), 'zone: stopping');
    await driver.stop(s.id, 1000);
    t.pass('stop is idempotent');
  });

  await t.test('remove deletes the domain and its files', async (t) => {
    await driver.remove(s.id);
    t.notOk(virshQuiet('dominfo', s.id).ok, 'domain gone');
    t.notOk(existsSync(join(dataDir, 'libvirt/domains', s.id)), 'files gone');
    t.equal(await driver.inspect(s.id), null);
    await waitFor(() => events.find((e) => e.type === 'removed' && e.id === s.id), { timeoutMs: 15_000, what: 'the removed event' });
    await driver.remove(s.id);
    t.pass('remove is idempotent');
  });
});

t.test('a command that exits powers the guest off with its exit code', async (t) => {
  const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
  t.teardown(() => driver.close());
  const s = spec('exit3', { command: ['sh', '-c', 'echo bye; exit 3'] });
  t.teardown(() => driver.remove(s.id));
  await driver.ensure(s);
  const exited = await waitFor(async () => {
    const o = await driver.inspect(s.id);
    return o?.state === 'exited' ? o : null;
  }, { timeoutMs: BOOT_MS, what: 'the guest to power off' });
  t.equal(exited.exitCode, 3);
  t.ok(exited.finishedAt);
});

t.test('domains without our metadata are ignored and left alone', async (t) => {
  const driver = new LibvirtDriver(ctx);
  t.teardown(() => driver.close());
  const name = `zone-${NODE}-foreign`;
  created.push(name);
  const xml = join(dataDir, 'foreign.xml');
  writeFileSync(xml, `<domain type="qemu"><name>${name}</name><memory unit="MiB">64</memory><os><type arch="x86_64">hvm</type></os></domain>`);
  virsh('define', xml);
  t.equal(await driver.inspect(name), null);
  t.notOk((await driver.list(NODE)).some((o) => o.id === name));
  await t.rejects(driver.remove(name), /not managed by zone/);
  await t.rejects(driver.stop(name, 0), /not managed by zone/);
  t.ok(virshQuiet('dominfo', name).ok, 'still defined');
});

t.test('unknown images and unreachable libvirtd give the contract errors', async (t) => {
  const driver = new LibvirtDriver(ctx);
  t.teardown(() => driver.close());
  await t.rejects(driver.ensure(spec('noimage', { image: 'zone/does-not-exist' })), { code: 'WORKLOAD_SPEC', field: 'image' });
  const away = new LibvirtDriver(ctx, { uri: 'qemu+unix:///system?socket=/nonexistent/libvirt-sock' });
  t.teardown(() => away.close());
  await t.rejects(away.inspect('zone-x'), { code: 'ENGINE_UNAVAILABLE' });
  t.match(await away.fingerprint(), { available: false });
  const events: DriverEvent[] = [];
  const unwatch = away.watch((e) => events.push(e));
  t.teardown(unwatch);
  const engine = await waitFor(() => events.find((e) => e.type === 'engine'), { timeoutMs: 10_000, what: 'the engine event' });
  t.match(engine, { type: 'engine', available: false });
  const deep = new LibvirtDriver({ ...ctx, dataDir: `/var/tmp/${'d'.repeat(100)}` });
  t.teardown(() => deep.close());
  t.match(await deep.fingerprint(), { available: false, reason: /too long for the VM console sockets/ });
  await t.rejects(deep.ensure(spec('deep', {})), /too long/);
});
