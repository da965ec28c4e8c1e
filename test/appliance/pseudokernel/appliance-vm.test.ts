// /zone in VMs, with the real libvirt and Docker drivers and two appliances whose
// nats-servers form one cluster (two nodes on loopback in this process): a VM on node A
// and a container on node B share the owner's files byte-exact both ways; another
// owner's VM sees none of them.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import pino from 'pino';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../../appliance/appliance.ts';
import { GIB } from '../../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy, type NodeConfig } from '../../../appliance/config.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { removeNodeContainers } from '../../../cli/cluster/grid.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { generateSigningKeyPair } from '../../../lib/ed25519.ts';
import { makeOwnerToken } from '../../../lib/tokens.ts';
import { restartPath } from '../../../appliance/pseudokernel/proc/node-control.ts';
import { loopbackGrid } from '../../helpers/nats-grid.ts';
import { freeLoopbackPorts } from '../../helpers/ports.ts';
import { waitFor } from '../../helpers/wait.ts';

const BOOT_MS = 120_000;
const base = mkdtempSync('/var/tmp/zone-pk-vm-');
chmodSync(base, 0o711); // qemu (libvirt's qemu user) walks to the initrd and the /zone mount under the data dirs
const ports = await freeLoopbackPorts(4);
const grid = await loopbackGrid(base);

async function nodeConfig(name: 'a' | 'b', i: number): Promise<NodeConfig> {
  const dir = join(base, name);
  mkdirSync(dir, { mode: 0o711 });
  const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${ports[i]!}` }, cwd: dir });
  const cluster = { name: 'zone-vm-test', host: '127.0.0.1', port: ports[2 + i]!, routes: [`127.0.0.1:${ports[3 - i]!}`], ...(await grid.routeFiles(name)) };
  return { ...config, nats: { ...config.nats, cluster } };
}
const configs = { a: await nodeConfig('a', 0), b: await nodeConfig('b', 1) };
const { policy: created, createdOperatorKey } = loadOrCreateTrustPolicy(configs.a);
const operator = readSigningKey(createdOperatorKey!);
// The operator also signs for a second owner: the policy grants it any owner.
const policy = { ...created, signers: created.signers.map((s) => ({ ...s, owners: '*' as const })) };

const start = (config: NodeConfig, vms: boolean) => createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 }), ...(vms ? [new LibvirtDriver(ctx, { removeGraceMs: 0 })] : [])],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
  pseudokernel: { startTimeoutMs: 60_000 },
});
// Together: JetStream answers once both servers have elected the cluster's meta leader.
const [a, b] = await Promise.all([start(configs.a, true), start(configs.b, false)]) as [ZoneAppliance, ZoneAppliance];
a.start();
b.start();
const other = generateSigningKeyPair().publicKey;
const domains = [workloadId(a.identity.id, operator.publicKey, 'vmfiles', 'vm'), workloadId(a.identity.id, other, 'peek', 'vm')];
t.teardown(async () => {
  await Promise.all([a.close(), b.close()]);
  for (const id of domains) {
    spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', id]);
    spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', id]);
  }
  await removeNodeContainers([a.identity.id, b.identity.id]).catch(() => {});
  rmSync(base, { recursive: true, force: true });
});

const sign = (node: ZoneAppliance, bp: Partial<Blueprint>) => signBlueprint({ owner: operator.publicKey, node: node.identity.id, ...bp } as Blueprint, operator.secretKey);
const logsOf = async (node: ZoneAppliance, blueprint: string, workload: string, owner = operator.publicKey) => text(await node.logs(blueprint, workload, { follow: false, owner }));
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

t.test('the libvirt driver declares mount and says so in the node info', async (t) => {
  const vm = (await a.nodeInfo()).drivers.find((d) => d.kind === 'vm');
  t.match(vm, { available: true, capabilities: { mount: true }, details: { zoneMount: true } });
});

t.test('a VM\'s file is read byte-exact by a container on the other node, and that container\'s file in the VM, also after a kill from that node', async (t) => {
  const fromVm = execFileSync('seq', ['1', '200000'], { maxBuffer: 16 * 2 ** 20 });
  const fromContainer = execFileSync('seq', ['7', '3', '300000'], { maxBuffer: 16 * 2 ** 20 });
  const started = Date.now();
  // Both write beside the name and rename: a file is there from its creation on, empty until its writer closes it.
  await a.submit(sign(a, {
    name: 'vmfiles', version: 1, workloads: [{
      name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' },
      command: ['sh', '-ec', 'cat /zone/self/name /zone/self/node; seq 1 200000 > /zone/fs/from-vm.part; mv /zone/fs/from-vm.part /zone/fs/from-vm.txt; echo written; until [ -f /zone/fs/from-container.txt ]; do sleep 0.2; done; md5sum /zone/fs/from-container.txt; exec sleep 3600'],
    }],
  }));
  await b.submit(sign(b, {
    name: 'cfiles', version: 1, workloads: [{
      name: 'box', kind: 'container', image: 'zone/busybox',
      command: ['sh', '-ec', 'seq 7 3 300000 > /zone/fs/from-container.part; mv /zone/fs/from-container.part /zone/fs/from-container.txt; until [ -f /zone/fs/from-vm.txt ]; do sleep 0.2; done; md5sum /zone/fs/from-vm.txt; exec sleep 3600'],
    }],
  }));
  const inContainer = await waitFor(async () => (await logsOf(b, 'cfiles', 'box')).match(/^([0-9a-f]{32}) {2}\/zone\/fs\/from-vm\.txt$/m)?.[1], { timeoutMs: BOOT_MS, what: 'the container\'s md5sum of the VM\'s file' });
  t.comment(`the VM's file read on node B ${Date.now() - started} ms after the submits`);
  t.equal(inContainer, md5(fromVm), 'the container on node B reads what the VM on node A wrote, byte-exact');
  const inVm = await waitFor(async () => (await logsOf(a, 'vmfiles', 'vm')).match(/^([0-9a-f]{32}) {2}\/zone\/fs\/from-container\.txt\r?$/m)?.[1], { timeoutMs: BOOT_MS, what: 'the VM\'s md5sum of the container\'s file' });
  t.equal(inVm, md5(fromContainer), 'the VM reads what the container wrote, byte-exact');
  const vmLog = await logsOf(a, 'vmfiles', 'vm');
  t.match(vmLog, `\nvm\r\n${a.identity.id}\r\n`, '/zone/self is the VM\'s own');
  t.match(vmLog, '\nwritten\r\n');
  t.notMatch(vmLog, 'zone: no /zone');
  const vmRow = await waitFor(async () => (await (await b.pseudokernel!.procTable(operator.publicKey)).list()).find((r) => r.workload === 'vm' && r.state === 'running'), { timeoutMs: 30_000, what: 'the VM in the owner\'s process table' });
  t.match(vmRow, { node: a.identity.id, kind: 'vm' }, 'node B\'s process table lists the VM');

  // zone shell's `kill` on node B: node A restarts its VM, whose next boot has /zone again.
  const token = makeOwnerToken(operator, { aud: a.identity.id, method: 'POST', path: restartPath(a.identity.id, 'vmfiles', 'vm') });
  await b.gridRestart({ owner: operator.publicKey, token }, a.identity.id, 'vmfiles', 'vm');
  const again = await waitFor(async () => { const m = [...(await logsOf(a, 'vmfiles', 'vm')).matchAll(/^([0-9a-f]{32}) {2}\/zone\/fs\/from-container\.txt\r?$/gm)]; return m.length === 2 && m[1]![1]; }, { timeoutMs: BOOT_MS, what: 'the restarted VM\'s md5sum' });
  t.equal(again, md5(fromContainer), 'killed from the other node, the VM boots again and reads /zone');
});

t.test('another owner\'s VM sees only its own /zone', async (t) => {
  await a.submit(signBlueprint({
    owner: other, node: a.identity.id, name: 'peek', version: 1, workloads: [{
      name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' },
      command: ['sh', '-ec', 'cat /zone/self/owner; ls -a /zone/fs | wc -l; [ -e /zone/fs/from-vm.txt ] && echo seen || echo absent; until [ -d /zone/proc/peek ]; do sleep 0.2; done; ls /zone/proc; echo listed; exec sleep 3600'],
    }],
  } as Blueprint, operator.secretKey));
  const log = await waitFor(async () => { const l = await logsOf(a, 'peek', 'vm', other); return /listed\r?$/m.test(l) && l; }, { timeoutMs: BOOT_MS, what: 'the other owner\'s VM to look' });
  const out = log.slice(log.indexOf(other)).replace(/\r/g, '').replace(/ /g, '');
  t.match(out, `${other}\n2\nabsent\npeek\nlisted\n`, 'its own owner, an empty fs/ (only . and ..), only its own blueprint in proc/');
});

t.test('tombstones remove the VMs and release their /zone mounts', async (t) => {
  await a.submit(sign(a, { name: 'vmfiles', version: 2, delete: true }));
  await a.submit(signBlueprint({ owner: other, node: a.identity.id, name: 'peek', version: 2, delete: true } as Blueprint, operator.secretKey));
  await b.submit(sign(b, { name: 'cfiles', version: 2, delete: true }));
  await waitFor(() => a.pseudokernel!.mounted().size === 0 && b.pseudokernel!.mounted().size === 0, { timeoutMs: 60_000, what: 'the /zone mounts released' });
  const listed = execFileSync('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'], { encoding: 'utf8' }).split('\n');
  t.same(domains.filter((id) => listed.includes(id)), [], 'the domains are gone');
});
