// Against the real libvirtd (qemu:///system, TCG is fine), what the conformance suite
// (test/drivers/conformance/libvirt.test.ts) does not cover: the accelerator probe, a
// command's exit code powering the guest off, foreign domains, the contract's errors.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 120_000;
const NODE = `lvdrv-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:test-owner';
const dataDir = mkdtempSync('/var/tmp/zone-lvdrv-');
chmodSync(dataDir, 0o711);
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => { throw new Error('no secrets here'); } };

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

t.test('fingerprint probes the accelerator', async (t) => {
  const driver = new LibvirtDriver(ctx);
  t.teardown(() => driver.close());
  const fp = await driver.fingerprint();
  t.ok(['kvm', 'tcg'].includes(String(fp.details.accelerator)), `accelerator ${fp.details.accelerator}: ${fp.details.acceleratorReason}`);
  t.equal(fp.details.kernelPresent, true);
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

t.test('an unknown image is a spec error; a data dir too long for the console sockets is reported', async (t) => {
  const driver = new LibvirtDriver(ctx);
  t.teardown(() => driver.close());
  await t.rejects(driver.ensure(spec('noimage', { image: 'zone/does-not-exist' })), { code: 'WORKLOAD_SPEC', field: 'image' });
  const deep = new LibvirtDriver({ ...ctx, dataDir: `/var/tmp/${'d'.repeat(100)}` });
  t.teardown(() => deep.close());
  t.match(await deep.fingerprint(), { available: false, reason: /too long for the VM console sockets/ });
  await t.rejects(deep.ensure(spec('deep', {})), /too long/);
});
