// The web console's terminal onto a VM's serial console, in Debian's chromium against a
// node with the real libvirt driver (TCG is fine): it shows the guest's marker line and
// takes keystrokes. One boot: run it under `flock /tmp/zone-vm.lock`.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import pino from 'pino';
import t from 'tap';
import { createAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { buildServer } from '../../api/server.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { LibvirtDriver } from '../../drivers/libvirt/driver.ts';
import { waitFor } from '../helpers/wait.ts';
import { launchBrowser, screenshot, show, signedIn, terminalLines } from '../helpers/console-browser.ts';

const BOOT_MS = 180_000;
// qemu runs as its own user: the data directory must be traversable (as the driver's tests do).
const dir = mkdtempSync('/var/tmp/zone-console-vm-');
chmodSync(dir, 0o711);
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const owner = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new LibvirtDriver(ctx, { removeGraceMs: 0 })],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  usagePeriodMs: 1000,
});
appliance.start();
const node = appliance.identity.id;
const server = await buildServer(appliance, { logger: false });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
const sign = (bp: Partial<Blueprint>) => signBlueprint({ owner: owner.publicKey, node, name: 'guest', ...bp } as Blueprint, owner.secretKey);
t.teardown(async () => {
  // The tombstone removes the domain and its files; then the node stops.
  await appliance.submit(sign({ version: 2, delete: true })).catch(() => undefined);
  await waitFor(() => appliance.getBlueprint('guest')?.workloads.length === 0 || !appliance.getBlueprint('guest'), { timeoutMs: 60_000, what: 'the VM removed' }).catch(() => undefined);
  await server.close();
  await appliance.close();
  rmSync(dir, { recursive: true, force: true });
});

await appliance.submit(sign({
  version: 1,
  workloads: [{ name: 'vm', kind: 'vm', image: 'zone/busybox', resources: { memory: '128Mi' }, command: ['sh', '-c', 'echo guest-ready; while read line; do echo "got:$line"; done'] }],
}));
const browser = await launchBrowser();
const page = await signedIn(browser, url, owner);

t.test('the VM console shows the guest\'s marker line and takes keystrokes', async (t) => {
  await waitFor(() => appliance.getBlueprint('guest')?.workloads[0]?.state === 'running', { timeoutMs: BOOT_MS, what: 'the VM running' });
  await show(page, 'terminal/guest/vm');
  await page.waitForSelector('#terminal-status::-p-text(connected)');
  await waitFor(async () => (await terminalLines(page)).some((l) => l.includes('zone: started vm')), { timeoutMs: BOOT_MS, what: 'the guest marker in the console' });
  await waitFor(async () => (await terminalLines(page)).some((l) => l.includes('guest-ready')), { timeoutMs: BOOT_MS, what: 'the command\'s first line' });
  await page.focus('.xterm-helper-textarea');
  await page.keyboard.type('ping\r');
  await waitFor(async () => (await terminalLines(page)).some((l) => l.includes('got:ping')), { timeoutMs: 60_000, what: 'the guest\'s answer' }).catch(async (err: unknown) => {
    t.comment(JSON.stringify((await terminalLines(page)).filter(Boolean).slice(-10)));
    throw err;
  });
  t.pass('marker, output and an answer to a keystroke in the console');
  await screenshot(page, 'vm-console');
});

t.test('the VM\'s CPU and memory are sampled from libvirt for the plots', async (t) => {
  const series = await waitFor(() => appliance.console.usage(owner.publicKey).find((s) => s.workload === 'vm' && s.samples.length > 0), { timeoutMs: 30_000, what: 'a sample of the VM' });
  const last = series.samples.at(-1)!;
  t.ok(last.memoryBytes >= 64 * 2 ** 20 && last.memoryBytes <= 128 * 2 ** 20, `memory ${last.memoryBytes} bytes (the guest's 128 MiB)`);
  t.ok(last.cpu >= 0, `cpu ${last.cpu.toFixed(3)} cores`);
});
