// The driver contract against the real libvirtd (qemu:///system, TCG is fine): one
// zone/busybox VM, booted once for every case. Run it under `flock /tmp/zone-vm.lock`.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { Driver, DriverContext } from '../../../drivers/contract.ts';
import { METADATA_NS } from '../../../drivers/libvirt/domain-xml.ts';
import { LibvirtDriver } from '../../../drivers/libvirt/driver.ts';
import { workloadId } from '../../../drivers/names.ts';
import { waitFor } from '../../helpers/wait.ts';
import { CONFORMANCE_SCRIPT, driverConformance } from './suite.ts';

const NODE = `lvconf-${randomBytes(3).toString('hex')}`;
const OWNER = 'ed25519:conformance-owner';
const ID = workloadId(NODE, OWNER, 'conformance', 'probe');
const dataDir = mkdtempSync('/var/tmp/zone-lvconf-');
chmodSync(dataDir, 0o711); // qemu (libvirt's qemu user) walks to the initrd under the data dir
const ctx: DriverContext = { node: NODE, dataDir, openSecret: (v) => (v === 'sealed:token' ? 'clear-token' : '') };
const virsh = (...args: string[]) => spawnSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8' });
const drivers: Driver[] = [];

t.teardown(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  virsh('destroy', ID);
  virsh('undefine', ID);
  rmSync(dataDir, { recursive: true, force: true });
});

await driverConformance(t, {
  node: NODE,
  makeDriver: () => {
    const driver = new LibvirtDriver(ctx, { removeGraceMs: 0 });
    drivers.push(driver);
    return driver;
  },
  makeUnreachableDriver: () => {
    const driver = new LibvirtDriver(ctx, { uri: 'qemu+unix:///system?socket=/nonexistent/libvirt-sock' });
    drivers.push(driver);
    return driver;
  },
  spec: ({ zoneMount }) => {
    const definition = normalizeWorkload({
      name: 'probe', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' },
      command: ['sh', '-c', `echo "token=$TOKEN"; ${CONFORMANCE_SCRIPT}`], env: { TOKEN: 'sealed:token' },
    });
    return { node: NODE, owner: OWNER, blueprint: 'conformance', workload: 'probe', id: ID, specHash: specHash(definition), definition, ...(zoneMount ? { zoneMount } : {}) };
  },
  startMs: 120_000,
  eventMs: 15_000,
  owned: async (spec) => [
    ...(virsh('dominfo', spec.id).status === 0 ? [`domain ${spec.id}`] : []),
    ...[join(dataDir, 'libvirt/domains', spec.id)].filter((path) => existsSync(path)),
  ],
  whileRunning: async (t, driver, spec) => {
    const console = async () => {
      let text = '';
      for await (const chunk of await driver.logs(spec.id, { follow: false })) text += String(chunk);
      return text;
    };
    await waitFor(async () => (await console()).includes('token=clear-token'), { timeoutMs: 30_000, what: 'the opened secret in the console' });
    t.pass('the sealed env value was opened for the guest');
    t.ok(execFileSync('virsh', ['-c', 'qemu:///system', 'list', '--name'], { encoding: 'utf8' }).split('\n').includes(spec.id), 'virsh list shows it');
    const meta = execFileSync('virsh', ['-c', 'qemu:///system', 'metadata', spec.id, METADATA_NS], { encoding: 'utf8' });
    t.match(meta, `<node>${NODE}</node>`);
    t.match(meta, `<spec-hash>${spec.specHash}</spec-hash>`);
  },
});
