// Which WireGuard the driver picks, and the receive buffer it raises for wireguard-go.
// The kernel path cannot run on this machine (its kernel has no WireGuard): its choice
// is tested here with a probe that succeeds.
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectImplementation, probeKernelWireguard, raisedBuffer, raiseReceiveBufferDefault, WIREGUARD_GO_RECEIVE_BUFFER,
} from '../../../drivers/wireguard/implementation.ts';
import { WireguardDriver } from '../../../drivers/wireguard/driver.ts';
import { runCommand } from '../../../lib/exec.ts';

t.test('the kernel is chosen when its probe succeeds, wireguard-go when it fails', async (t) => {
  t.equal(await detectImplementation(async () => 'ok'), 'kernel');
  t.equal(await detectImplementation(async () => { throw new Error('Error: Unknown device type.'); }), 'wireguard-go');
});

t.test('the real probe decides as its link can be made, in a namespace of its own', async (t) => {
  const kernelHasIt = await probeKernelWireguard().then(() => true, (e: Error) => {
    t.match(e.message, /Unknown device type|not supported/i, 'refused for want of WireGuard (this machine: no module)');
    return false;
  });
  t.equal(await detectImplementation(), kernelHasIt ? 'kernel' : 'wireguard-go');
  await t.rejects(runCommand(['ip', 'link', 'show', 'zwprobe']), 'no probe link is left in ours');
});

t.test('the driver reports the implementation its probe decides, once', async (t) => {
  let probes = 0;
  const driver = (probe: () => Promise<unknown>) => new WireguardDriver({ node: 'n1', dataDir: tmpdir(), openSecret: () => { throw new Error('unused'); } }, { probeKernel: probe });
  const kernel = driver(async () => { probes++; });
  t.equal((await kernel.fingerprint()).details.implementation, 'kernel');
  t.same((await kernel.fingerprint()).details, { implementation: 'kernel' }, 'no receive buffer: the kernel needs none raised');
  t.equal(probes, 1, 'probed once');
  const userspace = await driver(async () => { throw new Error('no'); }).fingerprint();
  t.equal(userspace.details.implementation, 'wireguard-go');
  t.type(userspace.details.receiveBuffer, 'number');
});

t.test('the receive buffer default is raised to what wireguard-go needs, never lowered', async (t) => {
  t.equal(raisedBuffer(212992, WIREGUARD_GO_RECEIVE_BUFFER), WIREGUARD_GO_RECEIVE_BUFFER);
  t.equal(raisedBuffer(WIREGUARD_GO_RECEIVE_BUFFER, WIREGUARD_GO_RECEIVE_BUFFER), null);
  t.equal(raisedBuffer(16 << 20, WIREGUARD_GO_RECEIVE_BUFFER), null);

  const dir = await mkdtemp(join(tmpdir(), 'wg-rmem-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'rmem_default');
  await writeFile(file, '212992\n');
  t.equal(await raiseReceiveBufferDefault(WIREGUARD_GO_RECEIVE_BUFFER, file), WIREGUARD_GO_RECEIVE_BUFFER);
  t.equal((await readFile(file, 'utf8')).trim(), String(WIREGUARD_GO_RECEIVE_BUFFER));
  await writeFile(file, '33554432\n');
  t.equal(await raiseReceiveBufferDefault(WIREGUARD_GO_RECEIVE_BUFFER, file), 33554432, 'a larger setting stays');
  t.equal((await readFile(file, 'utf8')).trim(), '33554432');
  await writeFile(file, 'garbage\n');
  await t.rejects(raiseReceiveBufferDefault(WIREGUARD_GO_RECEIVE_BUFFER, file), /does not hold a number/);
});
