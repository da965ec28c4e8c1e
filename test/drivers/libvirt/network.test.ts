// A VM and a container of one blueprint on one of its networks, through the appliance with
// the real Docker, libvirt and network drivers: the VM gets a bridge joined to the
// network's namespace and configures its address at boot; each reaches the other; the
// tombstone removes domain, container, namespace and bridge. (The test runs in libvirtd's
// network namespace, where the VM bridges are.)
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import pino from 'pino';
import t from 'tap';
import { GIB } from '../../../appliance/admission.ts';
import { createAppliance } from '../../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../appliance/config.ts';
import { workloadId } from '../../../drivers/names.ts';
import { readSigningKey } from '../../../blueprints/keys.ts';
import type { Blueprint } from '../../../blueprints/schema.ts';
import { signBlueprint } from '../../../blueprints/sign.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { WireguardDriver } from '../../../drivers/wireguard/driver.ts';
import { networkId } from '../../../drivers/names.ts';
import { vmLinks } from '../../../drivers/wireguard/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const dir = mkdtempSync('/var/tmp/zone-vmnet-');
chmodSync(dir, 0o711); // qemu walks to the initrd under the data dir
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 0 }), new LibvirtDriver(ctx, { removeGraceMs: 0 })],
  networks: (ctx) => new WireguardDriver(ctx),
  hostCapacity: { cpus: 2, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
});
const node = appliance.identity.id;
const owner = operator.publicKey;
const vm = workloadId(node, owner, 'vmnet', 'box');
const container = workloadId(node, owner, 'vmnet', 'web');
const ns = networkId({ node, owner, blueprint: 'vmnet', network: 'lan' });
const bridge = vmLinks(ns, '10.93.1.20').bridge;
const ok = (cmd: string, ...args: string[]) => spawnSync(cmd, args).status === 0;

t.teardown(async () => {
  await appliance.close();
  ok('virsh', '-c', 'qemu:///system', 'destroy', vm);
  ok('virsh', '-c', 'qemu:///system', 'undefine', vm);
  ok('docker', 'rm', '-f', container);
  ok('ip', 'netns', 'del', ns);
  ok('ip', 'link', 'del', bridge);
  while (ok('iptables', '-D', 'FORWARD', '-i', 'zb-+', '-o', 'zb-+', '-j', 'ACCEPT', '-m', 'comment', '--comment', 'zone: VMs on their networks'));
  rmSync(dir, { recursive: true, force: true });
});
appliance.start();

const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner, node, ...bp } as Blueprint, operator.secretKey);
async function consoleText(): Promise<string> {
  let text = '';
  for await (const chunk of await appliance.logs('vmnet', 'box', { follow: false })) text += String(chunk);
  return text;
}

t.test('a VM and a container on one network reach each other', async (t) => {
  await appliance.submit(sign({
    name: 'vmnet', version: 1,
    networks: [{ name: 'lan', subnet: '10.93.1.0/24' }],
    workloads: [
      { name: 'web', kind: 'container', image: 'zone/busybox', networks: [{ name: 'lan', ip: '10.93.1.10' }],
        command: ['sh', '-c', 'mkdir -p /www && echo from-container > /www/index.html && exec httpd -f -p 80 -h /www'] },
      { name: 'box', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' }, networks: [{ name: 'lan', ip: '10.93.1.20' }],
        command: ['sh', '-c', 'until timeout 5 wget -q -O - http://10.93.1.10/; do sleep 1; done; mkdir -p /www && echo from-vm > /www/index.html && exec httpd -f -p 80 -h /www'] },
    ],
  }));
  await waitFor(() => consoleText().then((c) => c.includes('from-container')), { timeoutMs: 200_000, what: 'the VM fetching the container\'s page' });
  t.pass('the VM reached the container');
  const boxStates = appliance.events({ blueprint: 'vmnet' }).filter((e) => e.workload === 'box').map((e) => e.to);
  t.same(boxStates.slice(0, 2), ['pending', 'running'], 'the VM started on its first try: its bridge was made before it');
  t.notOk(boxStates.some((s) => s === 'backoff' || s === 'failed'), 'no failed start, no retry');
  t.match(execFileSync('ip', ['-o', 'link', 'show', bridge], { encoding: 'utf8' }), `alias zone:${ns}`, 'the VM\'s bridge carries its network\'s alias');
  t.match(execFileSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }), '-i zb-+ -o zb-+', 'bridged VM frames pass the host\'s FORWARD policy');
  const page = await waitFor(() => execFileSync('docker', ['exec', container, 'timeout', '3', 'wget', '-q', '-O', '-', 'http://10.93.1.20/'], { encoding: 'utf8' }),
    { timeoutMs: 30_000, what: 'the container fetching the VM\'s page' });
  t.equal(page.trim(), 'from-vm', 'the container reached the VM');
});

t.test('the tombstone removes the domain, the container, the network and the VM\'s bridge', async (t) => {
  await appliance.submit(sign({ name: 'vmnet', version: 2, delete: true }));
  await waitFor(() => appliance.getBlueprint('vmnet')?.workloads.length === 0, { timeoutMs: 60_000, what: 'workloads removed' });
  await waitFor(() => !existsSync(`/var/run/netns/${ns}`), { timeoutMs: 30_000, what: 'network namespace removed' });
  t.notOk(ok('virsh', '-c', 'qemu:///system', 'dominfo', vm), 'no domain');
  t.notOk(ok('docker', 'inspect', container), 'no container');
  t.notOk(ok('ip', 'link', 'show', bridge), 'no bridge');
  t.notMatch(execFileSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }), 'zb-+', 'no firewall rule once no VM bridge is left');
});
