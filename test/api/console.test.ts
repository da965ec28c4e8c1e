// The web console in a real browser (Debian's chromium through puppeteer-core) against a
// real node: the Docker driver, a nats-server for /zone/fs, and the API on loopback. One
// browser and one node for the file. Screenshots of each page go to .artefacts/console/.
import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import type { Page } from 'puppeteer-core';
import t from 'tap';
import WebSocket from 'ws';
import { createAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { workloadId } from '../../drivers/names.ts';
import { buildServer } from '../../api/server.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import { freeLoopbackPorts } from '../helpers/ports.ts';
import { waitFor } from '../helpers/wait.ts';
import { launchBrowser, screenshot, show, signedIn, terminalLines, WAIT_MS } from '../helpers/console-browser.ts';
import { makeOwnerToken } from '../../lib/tokens.ts';
import { call, ownerCall } from './node.ts';

const docker = new Docker();
const dir = mkdtempSync(join(tmpdir(), 'zone-console-'));
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const owner = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 1000 })],
  hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  // A second restart delay long enough for the page to show the backoff.
  backoff: { firstMs: 3000, maxMs: 6000, stableMs: 60_000, crashloopAfter: 5 },
  pseudokernel: {},
  usagePeriodMs: 500,
});
appliance.start();
const node = appliance.identity.id;
const server = await buildServer(appliance, { logger: false });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
t.teardown(async () => {
  await server.close();
  await appliance.close();
  await removeNodeContainers([node]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const containerOf = (workload: string) => docker.getContainer(workloadId(node, owner.publicKey, 'site', workload));

const stateOnPage = (page: Page, workload: string) => page.$eval(`[data-blueprint="site"] tr:has([data-workload="${workload}"]) [data-state]`, (e) => e.getAttribute('data-state')).catch(() => null);

await appliance.submit(signBlueprint({
  owner: owner.publicKey, node, name: 'site', version: 1,
  workloads: [{ name: 'web', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', 'echo hello from web; exec sleep 3600'], restart: 'always' }],
} as Blueprint, owner.secretKey));
await waitFor(() => appliance.getBlueprint('site')?.workloads[0]?.state === 'running', { timeoutMs: 60_000, what: 'web running' });
const asOwner = ownerCall(owner, node);
await asOwner(`${url}/v1/grid/fs/notes.html`, { method: 'PUT', text: '<b id="injected">not markup</b>', type: 'application/octet-stream' });
const browser = await launchBrowser();
const page = await signedIn(browser, url, owner);

t.test('signed in with a key, the blueprint page shows what the API says, and follows docker kills (an immediate restart, then backoff) to running without a reload', async (t) => {
  const api = (await asOwner(`${url}/v1/grid/blueprints`)).json as { blueprints: Array<{ name: string; workloads: Array<{ workload: string; state: string }> }> };
  t.same(api.blueprints.map((b) => [b.name, b.workloads.map((w) => [w.workload, w.state])]), [['site', [['web', 'running']]]]);
  await waitFor(() => stateOnPage(page, 'web').then((s) => s === 'running'), { timeoutMs: WAIT_MS, what: 'web running on the page' });
  await screenshot(page, 'blueprints');

  await page.evaluate(() => { (window as unknown as { sameDocument: boolean }).sameDocument = true; });
  const restartsOnPage = () => page.$eval('[data-blueprint="site"] tbody tr td:nth-child(5)', (e) => e.textContent);
  // The first restart is immediate; the second, right after, waits out the backoff.
  await containerOf('web').kill();
  await waitFor(async () => (await stateOnPage(page, 'web')) === 'running' && (await restartsOnPage()) === '1', { timeoutMs: WAIT_MS, what: 'web restarted at once, on the page' });
  await containerOf('web').kill();
  await waitFor(() => stateOnPage(page, 'web').then((s) => s === 'backoff'), { timeoutMs: WAIT_MS, what: 'web in backoff on the page' });
  await screenshot(page, 'blueprints-backoff');
  await waitFor(() => stateOnPage(page, 'web').then((s) => s === 'running'), { timeoutMs: WAIT_MS, what: 'web running again on the page' });
  t.equal(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), true, 'the page was not reloaded');
  t.equal(await restartsOnPage(), '2', 'both restarts are counted on the page');
});

t.test('a terminal into the busybox container (no /bin/bash) runs the shell it has; it ends, with a message, when the container stops', async (t) => {
  await show(page, 'terminal/site/web');
  await page.waitForSelector('#terminal-status::-p-text(connected)');
  await page.waitForSelector('.xterm-helper-textarea');
  await page.focus('.xterm-helper-textarea');
  await page.keyboard.type('echo $((6*7))\n');
  const lines = () => terminalLines(page);
  await waitFor(async () => (await lines()).includes('42'), { timeoutMs: WAIT_MS, what: '42 in the terminal' }).catch(async (err: unknown) => {
    t.comment(JSON.stringify((await lines()).filter(Boolean)));
    throw err;
  });
  t.ok((await lines()).some((l) => l.includes('echo $((6*7))')), 'the command was echoed by the shell\'s TTY');
  await screenshot(page, 'terminal');

  await containerOf('web').kill();
  await page.waitForSelector('#terminal-status[data-ended="true"]');
  const said = await page.$eval('#terminal-status', (e) => e.textContent ?? '');
  t.match(said, /stopped|ended/, `the page says why: ${said}`);
  await waitFor(() => appliance.getBlueprint('site')?.workloads[0]?.state === 'running', { timeoutMs: WAIT_MS, what: 'web running again' });
});

t.test('logs follow, events filter, files show text as text, pipes and nodes answer; each page has a screenshot', async (t) => {
  await show(page, 'logs/site/web');
  await page.waitForSelector('#log::-p-text(hello from web)');
  await screenshot(page, 'logs');

  await show(page, 'events');
  await page.type('#event-filter', 'backoff');
  const reasons = await page.$$eval('#events tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
  t.ok(reasons.length > 0 && reasons.every((r) => r.includes('backoff')), 'only the matching events stay');
  await screenshot(page, 'events');

  await show(page, 'files/');
  await page.waitForSelector('a::-p-text(notes.html)');
  await screenshot(page, 'files');
  await show(page, 'files/notes.html');
  t.equal(await page.$eval('#file', (e) => e.textContent), '<b id="injected">not markup</b>', 'the file is shown as text');
  t.equal(await page.$('#injected'), null, 'nothing of it became markup');

  await show(page, 'pipes');
  t.match(await page.$eval('#page', (e) => e.textContent), /No pipes of yours/);
  await screenshot(page, 'pipes');

  await show(page, 'nodes');
  t.match(await page.$eval('#page', (e) => e.textContent), new RegExp(`This node: ${node}`));
  await screenshot(page, 'nodes');

  // The plots: the node samples every 500 ms here.
  await show(page, 'blueprints');
  await waitFor(async () => (await page.$$('svg.plot')).length >= 2 || (await show(page, 'blueprints'), false), { timeoutMs: WAIT_MS, what: 'the cpu and memory plots' });
  await screenshot(page, 'blueprints-plots');
});

t.test('the grid shell in the browser: ps lists the workload, cat prints a file as text', async (t) => {
  await show(page, 'shell');
  await page.waitForSelector('.xterm-helper-textarea');
  await page.focus('.xterm-helper-textarea');
  await page.keyboard.type('ps\r');
  await waitFor(async () => (await terminalLines(page)).some((l) => l.startsWith('NODE')), { timeoutMs: WAIT_MS, what: 'ps in the shell' });
  t.ok((await terminalLines(page)).some((l) => new RegExp(`^${node}\\s+site\\s+web\\s+container\\s`).test(l)), 'ps shows the workload');
  await page.keyboard.type('cat notes.html\r');
  await waitFor(async () => (await terminalLines(page)).includes('<b id="injected">not markup</b>'), { timeoutMs: WAIT_MS, what: 'cat in the shell' });
  await page.keyboard.type('kill site/nothing\r');
  await waitFor(async () => (await terminalLines(page)).some((l) => l.includes('kill: site/nothing: no such workload of yours')), { timeoutMs: WAIT_MS, what: 'a refusal in the shell' });
  t.pass('ps, cat and a refused kill answered in the shell');
  await screenshot(page, 'shell');
});

t.test('another owner\'s key sees none of the first owner\'s blueprints, files or terminals', async (t) => {
  const other = generateSigningKeyPair();
  const theirs = await signedIn(browser, url, other);
  t.match(await theirs.$eval('#page', (e) => e.textContent), /No blueprints of yours/);
  await show(theirs, 'files/');
  t.notOk(await theirs.$('a::-p-text(notes.html)'), 'the first owner\'s file is not listed');
  await show(theirs, 'files/notes.html');
  t.match(await theirs.$eval('#page', (e) => e.textContent), /404/);
  await show(theirs, 'events');
  t.equal((await theirs.$$('#events tbody tr')).length, 0, 'no events of the first owner');
  await show(theirs, 'terminal/site/web');
  await theirs.waitForSelector('#terminal-status[data-ended="true"]');
  t.match(await theirs.$eval('#terminal-status', (e) => e.textContent), /no workload site\/web of yours/);
  await screenshot(theirs, 'other-owner-terminal');
  await theirs.browserContext().close();
});

/** Opens a WebSocket to the terminal route; the HTTP status of a refusal, or the node's first text message. */
function terminalAttempt(headers: Record<string, string>, hello?: object): Promise<{ status?: number; message?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/grid/terminal/site/web`, { headers });
    const timer = setTimeout(() => reject(new Error('no answer from the terminal route')), WAIT_MS);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode });
      ws.terminate();
    });
    ws.on('open', () => ws.send(JSON.stringify(hello)));
    ws.on('message', (data, binary) => {
      if (binary) return;
      clearTimeout(timer);
      resolve({ message: String(data) });
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

t.test('a terminal WebSocket from another origin, or with another owner\'s token, is refused', async (t) => {
  t.equal((await terminalAttempt({ origin: 'http://evil.example' })).status, 403, 'another origin: 403 before the upgrade');
  t.equal((await terminalAttempt({})).status, 403, 'no origin: 403');
  const path = '/v1/grid/terminal/site/web';
  const other = generateSigningKeyPair();
  const refused = await terminalAttempt({ origin: url }, { token: makeOwnerToken(other, { aud: node, method: 'GET', path }), cols: 80, rows: 24 });
  t.match(refused.message, /no workload site\/web of yours/, 'another owner: not found');
  const wrongPath = await terminalAttempt({ origin: url }, { token: makeOwnerToken(owner, { aud: node, method: 'GET', path: '/v1/grid/proc' }), cols: 80, rows: 24 });
  t.match(wrongPath.message, /token refused/, 'a token made for another path is refused');
});

t.test('/metrics passes promtool check metrics with no lint line, with the workloads\' CPU and memory', async (t) => {
  await waitFor(() => appliance.console.latestUsage().length > 0, { timeoutMs: WAIT_MS, what: 'a usage sample' });
  const text = (await call(`${url}/metrics`)).text;
  t.match(text, /zone_workload_memory_bytes\{owner="[^"]+",blueprint="site",workload="web"\} [1-9]/);
  t.match(text, /zone_workload_cpu_cores\{owner="[^"]+",blueprint="site",workload="web"\} /);
  const lint = (() => {
    try {
      return execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return `${e.stdout ?? ''}${e.stderr ?? ''}` || 'promtool failed';
    }
  })();
  t.equal(lint.trim(), '', 'no lint line');
});
