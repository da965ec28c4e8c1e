// The appliance with the real libvirt driver: a VM blueprint boots and shows running, a VM
// destroyed behind the engine's back is started again, an appliance restart adopts it, a
// tombstone removes the domain and its disk, admission refuses a VM larger than the node.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { workloadId } from '../../../drivers/names.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 120_000;
const dir = mkdtempSync('/var/tmp/zone-lvengine-');
chmodSync(dir, 0o711); // qemu (libvirt's qemu user) walks to the initrd under the data dir
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
let nodeId = '';

async function start(): Promise<ZoneAppliance> {
  const appliance = await createAppliance({
    config, trustPolicy: policy, logger: pino({ level: 'silent' }),
    drivers: (ctx) => [new LibvirtDriver(ctx, { removeGraceMs: 0 })],
    hostCapacity: { cpus: 2, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
  });
  nodeId = appliance.identity.id;
  appliance.start();
  return appliance;
}

const virsh = (...args: string[]) => execFileSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });
const virshOk = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args]).status === 0;

let appliance = await start();
const id = workloadId(nodeId, operator.publicKey, 'lvengine', 'box');
t.teardown(async () => {
  await appliance.close();
  virshOk('destroy', id);
  virshOk('undefine', id);
  rmSync(dir, { recursive: true, force: true });
});

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: nodeId, ...bp } as Blueprint, operator.secretKey);
const state = () => appliance.getBlueprint('lvengine')?.workloads.find((x) => x.workload === 'box');
async function consoleText(): Promise<string> {
  let text = '';
  for await (const chunk of await appliance.logs('lvengine', 'box', { follow: false })) text += String(chunk);
  return text;
}
const boots = async () => (await consoleText()).split('zone: started box').length - 1;

t.test('a VM blueprint runs through the engine, heals, is adopted and removed by a tombstone', async (t) => {
  await appliance.submit(sign({
    name: 'lvengine', version: 1, workloads: [
      { name: 'box', kind: 'vm', image: 'zone/busybox', command: ['sh', '-c', 'while true; do sleep 5; done'], resources: { memory: '128Mi' } },
    ],
  }));
  await waitFor(() => state()?.state === 'running', { timeoutMs: BOOT_MS, what: 'the VM workload running' });
  await waitFor(async () => (await boots()) === 1, { timeoutMs: BOOT_MS, what: 'the guest marker' });
  t.ok(virsh('list', '--name').split('\n').includes(id), 'virsh list shows the domain');
  t.match(virsh('metadata', id, 'https://zone.dev/xmlns/libvirt/1'), '<blueprint>lvengine</blueprint>');
  const node = (await appliance.nodeInfo()).drivers.find((d) => d.kind === 'vm');
  t.ok(['kvm', 'tcg'].includes(String(node?.details.accelerator)), 'the accelerator is in the node info');

  const firstDomid = virsh('domid', id).trim();
  virsh('destroy', id);
  await waitFor(() => virshOk('domid', id) && /^\d+$/.test(virsh('domid', id).trim()) && virsh('domid', id).trim() !== firstDomid,
    { timeoutMs: 60_000, what: 'the domain started again' });
  await waitFor(() => state()?.state === 'running' && (state()?.restarts ?? 0) >= 1, { timeoutMs: 60_000, what: 'status running after a restart' });
  await waitFor(async () => (await boots()) === 2, { timeoutMs: BOOT_MS, what: 'the second boot' });

  const domid = virsh('domid', id).trim();
  await appliance.close();
  appliance = await start();
  await appliance.reconciler.idle();
  t.equal(state()?.state, 'running');
  t.equal(virsh('domid', id).trim(), domid, 'adopted after an appliance restart, not rebooted');
  t.equal(await boots(), 2);

  await appliance.submit(sign({ name: 'lvengine', version: 2, delete: true }));
  await waitFor(() => !virshOk('dominfo', id), { timeoutMs: 60_000, what: 'the domain removed' });
  await waitFor(() => !existsSync(join(dir, 'drivers/libvirt/domains', id)), { timeoutMs: 10_000, what: 'its initrd and console log removed' });
  await waitFor(() => appliance.getBlueprint('lvengine')?.workloads.length === 0, { timeoutMs: 10_000, what: 'statuses gone' });
});

t.test('a VM asking for more memory than the node has is refused by admission', async (t) => {
  await t.rejects(appliance.submit(sign({
    name: 'lvengine-big', version: 1, workloads: [{ name: 'huge', kind: 'vm', image: 'zone/busybox', resources: { memory: '64Gi' } }],
  })), { code: 'CAPACITY' });
  t.equal(appliance.getBlueprint('lvengine-big'), null);
});
