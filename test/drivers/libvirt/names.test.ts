// Forced name collisions against the real libvirtd: a domain defined (never started: no
// boot needed) under a workload's name with another identity's metadata is refused
// with an error naming both, never adopted, started, listed, stopped or undefined.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Workload } from '../../../blueprints/schema.ts';
import type { DriverContext, WorkloadIdentity, WorkloadSpec } from '../../../drivers/contract.ts';
import { domainXml, METADATA_NS } from '../../../drivers/libvirt/domain-xml.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { describeWorkload, legacyWorkloadId, workloadId } from '../../../drivers/names.ts';

const NODE = `lvname${randomBytes(3).toString('hex')}`;
const OWNER_A = `ed25519:${Buffer.alloc(32, 41).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 42).toString('base64')}`;
const dataDir = mkdtempSync('/var/tmp/zone-lvname-');
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => '' };
const driver = new LibvirtDriver(ctx, { accelerator: 'tcg' });
const defined: string[] = [];

const virsh = (...args: string[]) => execFileSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });
const virshQuiet = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });

t.teardown(async () => {
  await driver.close();
  for (const name of defined) virshQuiet('undefine', name);
  rmSync(dataDir, { recursive: true, force: true });
});

function specOf(owner: string, workload = 'box'): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'vm', image: 'zone/busybox', resources: { memory: '64Mi' } } as Workload);
  return { node: NODE, owner, blueprint: 'vms', workload, id: workloadId(NODE, owner, 'vms', workload), specHash: specHash(definition), definition };
}
const identity = (s: WorkloadSpec): WorkloadIdentity => ({ node: s.node, owner: s.owner, blueprint: s.blueprint, workload: s.workload });

/** Defines (does not start) a domain named `name` whose metadata records `holder`. */
function define(name: string, holder: WorkloadSpec): void {
  const xml = join(dataDir, `${name}.xml`);
  writeFileSync(xml, domainXml({
    name, accelerator: 'tcg', vcpus: 1, memoryBytes: 64 * 2 ** 20,
    boot: { kind: 'kernel', kernel: join(dataDir, 'no-kernel'), initrd: join(dataDir, 'no-initrd'), cmdline: 'console=ttyS0' },
    consoleLog: join(dataDir, `${name}.log`), consoleSocket: join(dataDir, 'c.sock'), controlSocket: join(dataDir, 'ctl.sock'), bridges: [],
    metadata: { ...identity(holder), specHash: holder.specHash },
  }));
  defined.push(name);
  virsh('define', xml);
}

t.test('a domain with the wanted name and another owner\'s metadata is refused naming both, and left as it was', async (t) => {
  const a = specOf(OWNER_A);
  const b = specOf(OWNER_B);
  define(a.id, b);
  const metadata = virsh('metadata', a.id, METADATA_NS);
  const err = await driver.ensure(a).then(() => null, (e: unknown) => e as Error);
  t.match(err, { code: 'WORKLOAD_SPEC', field: 'name' });
  t.match(err?.message, describeWorkload(identity(a)), 'names the wanted identity');
  t.match(err?.message, describeWorkload(identity(b)), 'names the identity the domain records');
  t.match(virsh('domstate', a.id), /shut off/, 'never started');
  t.equal(virsh('metadata', a.id, METADATA_NS), metadata, 'its metadata is untouched');
  t.equal(await driver.inspect(a.id), null, 'not seen as a workload of ours');
  t.notOk((await driver.list(NODE)).some((o) => o.id === a.id), 'not listed, so the engine never removes it as "not desired"');
  await t.rejects(driver.remove(a.id), /not managed by zone; it is left alone/);
  await t.rejects(driver.stop(a.id, 0), /not managed by zone; it is left alone/);
  t.ok(virshQuiet('dominfo', a.id).status === 0, 'still defined');
});

t.test('a domain an older appliance named (32-bit hash) with our metadata is listed as ours, so the engine replaces it', async (t) => {
  const a = specOf(OWNER_A, 'old');
  const legacy = legacyWorkloadId(NODE, OWNER_A, 'vms', 'old');
  define(legacy, a);
  t.match((await driver.list(NODE)).find((o) => o.id === legacy), { owner: OWNER_A, workload: 'old', state: 'created' });
  await driver.remove(legacy);
  t.not(virshQuiet('dominfo', legacy).status, 0, 'undefined by remove');
});
