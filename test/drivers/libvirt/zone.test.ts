// A VM's /zone against the real libvirtd (TCG is fine), two boots of one domain: made
// without a zoneMount it has no /zone; started again with one, the domain is redefined
// with the 9p share and its guest writes through /zone to the host directory, whose
// ownership the guest cannot change (accessmode squash). The directory here is a plain
// one: the pseudokernel's FUSE mount in its place is the appliance tests' business.
// Run it under `flock /tmp/zone-vm.lock`.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { DriverContext, WorkloadSpec } from '../../../drivers/contract.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';

const NODE = `lvzone-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:zone-owner';
const ID = workloadId(NODE, OWNER, 'zoned', 'vm');
const dataDir = mkdtempSync('/var/tmp/zone-lvzone-');
chmodSync(dataDir, 0o711); // qemu (libvirt's qemu user) walks to the initrd and the share under the data dir
const share = join(dataDir, 'zone', ID);
mkdirSync(share, { recursive: true });
chmodSync(join(dataDir, 'zone'), 0o711);
chmodSync(share, 0o777); // qemu writes there as its own user
const ctx: DriverContext = { node: NODE, dataDir, openSecret: () => '' };
const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });

t.teardown(async () => {
  await driver.close();
  virsh('destroy', ID);
  virsh('undefine', ID);
  rmSync(dataDir, { recursive: true, force: true });
});

const consoleText = async () => {
  let text = '';
  for await (const chunk of await driver.logs(ID, { follow: false })) text += String(chunk);
  return text;
};
const boots = async () => (await consoleText()).split('zone: started vm').length - 1;

t.test('a VM gets /zone once its spec has a zoneMount, written through to the host, ownership squashed', async (t) => {
  t.equal(driver.capabilities.mount, true, 'this host\'s qemu has virtio-9p');
  const definition = normalizeWorkload({
    name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' },
    command: ['sh', '-c', 'if grep -q " /zone 9p " /proc/mounts; then echo from-guest > /zone/hello.txt; chown 1234:1234 /zone/hello.txt; echo "shared: $(cat /zone/hello.txt)"; else echo "no /zone here"; fi; sleep 3600'],
  });
  const spec: WorkloadSpec = { node: NODE, owner: OWNER, blueprint: 'zoned', workload: 'vm', id: ID, specHash: specHash(definition), definition };
  await driver.ensure(spec);
  await waitFor(async () => /no \/zone here/.test(await consoleText()), { timeoutMs: 180_000, what: 'the first boot without /zone' })
    .catch(async (err: Error) => { throw new Error(`${err.message}; console: ${(await consoleText()).slice(-1500)}`); });
  t.notMatch(virsh('dumpxml', ID).stdout, '<filesystem', 'no share without a zoneMount');

  await driver.stop(ID, 0);
  await driver.ensure({ ...spec, zoneMount: share });
  t.match(virsh('dumpxml', ID).stdout, /<filesystem type='mount' accessmode='squash'>[\s\S]*<source dir='[^']*'\/>\s*<target dir='zone'\/>/, 'redefined with the share');
  const line = await waitFor(async () => (await boots()) === 2 && /shared: (\S+)\r?\n/.exec(await consoleText())?.[1], { timeoutMs: 180_000, what: 'the second boot writing /zone' })
    .catch(async (err: Error) => { throw new Error(`${err.message}; console: ${(await consoleText()).slice(-1500)}`); });
  t.equal(line, 'from-guest', 'the guest reads back what it wrote');
  t.equal(readFileSync(join(share, 'hello.txt'), 'utf8'), 'from-guest\n', 'the host directory holds it');
  t.not(statSync(join(share, 'hello.txt')).uid, 1234, 'the guest\'s chown did not reach the host');
  await driver.remove(ID);
});
