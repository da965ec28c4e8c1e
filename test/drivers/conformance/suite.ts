// The workload driver contract as one set of cases (after Nomad's DriverHarness): every
// driver runs them against its real engine through a harness that says how to make the
// driver and its workload. The cases share one workload, created once and removed at
// the end, so a VM boots once; each case leaves it as the next one expects.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import { EngineUnavailableError, type Driver, type DriverEvent, type ObservedWorkload, type WorkloadSpec } from '../../../drivers/contract.ts';
import { waitFor } from '../../helpers/wait.ts';

export interface DriverHarness {
  /** The node the driver works for (the specs' node). */
  node: string;
  /**
   * A new driver of `node` on the real engine. Called once for the cases and again to play
   * an appliance restart (adopt); the harness closes and cleans up what it makes.
   */
  makeDriver(): Driver;
  /** A driver of the same kind pointed at an engine that is not there (a socket nobody listens on). */
  makeUnreachableDriver?(): Driver;
  /**
   * The workload of the cases: once running it prints the content of /zone/hello if there
   * is one, then READY_TEXT, then answers each line on its stdin (or console) with
   * `got:<line>`, until it is asked to stop (TERM: exit code 143).
   */
  spec(options: { zoneMount?: string }): WorkloadSpec;
  /** What its logs hold once it runs; READY_TEXT unless the engine logs something else. */
  readyText?: string;
  /** The answer to a line, when the driver does not run the workload's command (the fake echoes). */
  answer?(line: string): string;
  /** Bounded waits: from ensure to the ready text; for an event. */
  startMs: number;
  eventMs: number;
  /** What the driver made for the workload beside it (files, networks) that still exists: nothing after remove. */
  owned?(spec: WorkloadSpec): Promise<string[]>;
  /** Driver-specific cases on the running workload, run after the contract's running cases (so a VM boots once). */
  whileRunning?(t: Test, driver: Driver, spec: WorkloadSpec): Promise<void>;
}

export const READY_TEXT = 'zone-conformance-ready';
/** The workload of DriverHarness.spec as a shell script (busybox sh). */
export const CONFORMANCE_SCRIPT = `[ -r /zone/hello ] && cat /zone/hello; echo ${READY_TEXT}; while read line; do echo "got:$line"; done`;

const GRACE_MS = 30_000;

export async function driverConformance(t: Test, harness: DriverHarness): Promise<void> {
  const driver = harness.makeDriver();
  const events: DriverEvent[] = [];
  const unwatch = driver.watch((e) => events.push(e));
  t.teardown(unwatch);
  const hello = `hello-${randomBytes(6).toString('hex')}`;
  const zoneMount = driver.capabilities.mount ? sharedMountWith(t, 'hello', `${hello}\n`) : undefined;
  const spec = harness.spec(zoneMount ? { zoneMount } : {});
  const readyText = harness.readyText ?? READY_TEXT;
  const answer = harness.answer ?? ((line: string) => `got:${line}`);
  const eventFor = (type: DriverEvent['type'], after: number) => waitFor(
    () => events.slice(after).find((e) => 'id' in e && e.id === spec.id && e.type === type),
    { timeoutMs: harness.eventMs, what: `a ${type} event for ${spec.id}` },
  );
  const logText = async (options: { tail?: number } = {}) => text(await driver.logs(spec.id, { follow: false, ...options }));
  let first: ObservedWorkload | undefined;

  await t.test('fingerprint: available, of its kind, with the capabilities the driver declares', async (t) => {
    const f = await driver.fingerprint();
    t.match(f, { kind: driver.kind, available: true });
    t.same(f.capabilities, driver.capabilities);
  });

  if (harness.makeUnreachableDriver) {
    const makeUnreachable = harness.makeUnreachableDriver;
    await t.test('without its engine: fingerprint says why, calls throw EngineUnavailableError, watch reports the engine down', async (t) => {
      const away = makeUnreachable();
      const seen: DriverEvent[] = [];
      const stop = away.watch((e) => seen.push(e));
      const f = await away.fingerprint();
      t.match(f, { kind: driver.kind, available: false, reason: /\S/ });
      t.same(f.capabilities, driver.capabilities, 'the capabilities are declared all the same');
      await t.rejects(away.ensure(spec), EngineUnavailableError);
      await t.rejects(away.inspect(spec.id), EngineUnavailableError);
      await t.rejects(away.list(harness.node), EngineUnavailableError);
      const engine = await waitFor(() => seen.find((e) => e.type === 'engine'), { timeoutMs: harness.eventMs, what: 'the engine event' });
      t.match(engine, { type: 'engine', available: false });
      stop();
      await away.close();
    });
  }

  await t.test('a workload that does not exist: inspect says null, stop and remove do nothing', async (t) => {
    t.equal(await driver.inspect(spec.id), null);
    await driver.stop(spec.id, 1000);
    await driver.remove(spec.id);
    t.notOk((await driver.list(harness.node)).some((o) => o.id === spec.id));
  });

  await t.test('ensure creates and starts it, with its identity; a started event follows', async (t) => {
    const before = events.length;
    first = await driver.ensure(spec);
    t.match(first, {
      id: spec.id, kind: spec.definition.kind, node: spec.node, owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload,
      specHash: spec.specHash, state: 'running', exitCode: null,
    });
    t.ok(first.startedAt, 'startedAt is known');
    await eventFor('started', before);
  });

  await t.test('ensure again changes nothing: not restarted', async (t) => {
    const again = await driver.ensure(spec);
    t.match(again, { state: 'running', specHash: spec.specHash, startedAt: first?.startedAt });
  });

  await t.test('ensure never replaces one whose specHash differs: that is the engine\'s plan', async (t) => {
    const other = await driver.ensure({ ...spec, specHash: 'f'.repeat(64) });
    t.match(other, { state: 'running', specHash: spec.specHash, startedAt: first?.startedAt });
    t.match(await driver.inspect(spec.id), { specHash: spec.specHash, startedAt: first?.startedAt });
  });

  await t.test('ensure of another workload whose name it holds is refused: it is neither adopted nor touched', async (t) => {
    const intruder = { ...spec, owner: `${spec.owner}-other` };
    await t.rejects(driver.ensure(intruder), { code: 'WORKLOAD_SPEC', field: 'name' });
    t.match(await driver.inspect(spec.id), { owner: spec.owner, state: 'running', startedAt: first?.startedAt });
  });

  await t.test('inspect reads it back as ensure returned it', async (t) => {
    t.match(await driver.inspect(spec.id), { ...identityOf(spec), state: 'running', startedAt: first?.startedAt });
  });

  await t.test('list finds it by its node\'s labels; another node sees none of it', async (t) => {
    t.match((await driver.list(harness.node)).filter((o) => o.id === spec.id), [{ ...identityOf(spec), state: 'running' }]);
    t.notOk((await driver.list(`${harness.node}-other`)).some((o) => o.id === spec.id));
  });

  await t.test('a new driver (an appliance restart) adopts it: lists it, and ensure does not restart it', async (t) => {
    const fresh = harness.makeDriver();
    t.match((await fresh.list(harness.node)).filter((o) => o.id === spec.id), [{ ...identityOf(spec), state: 'running', startedAt: first?.startedAt }]);
    t.match(await fresh.ensure(spec), { state: 'running', startedAt: first?.startedAt });
    await fresh.close();
  });

  await t.test('logs hold its output (the tail, and its last lines)', async (t) => {
    const all = await waitFor(async () => {
      const got = await logText();
      return got.includes(readyText) && got;
    }, { timeoutMs: harness.startMs, what: `"${readyText}" in the logs of ${spec.id}` });
    if (zoneMount) t.match(all, hello, 'the workload read its /zone (capability mount)');
    const lastLine = all.trimEnd().split('\n').at(-1)?.trimEnd();
    t.equal((await logText({ tail: 1 })).trimEnd(), lastLine, 'tail 1 is the last line');
  });

  if (driver.capabilities.attach || driver.capabilities.console) {
    await t.test(`attach (${driver.capabilities.attach ? 'stdio' : 'console'}): a line in, its answer out`, async (t) => {
      const io = await driver.attach(spec.id);
      const line = `ping-${randomBytes(4).toString('hex')}`;
      const seen = collect(io.stdout);
      io.stdin.write(`${line}\n`);
      await waitFor(() => seen().includes(answer(line)), { timeoutMs: harness.startMs, what: `"${answer(line)}" through the attach` });
      io.stdin.destroy();
      io.stdout.destroy();
      t.pass('answered');
    });
  } else {
    await t.test('attach is refused by a driver that declares neither attach nor console', async (t) => {
      await t.rejects(driver.attach(spec.id));
    });
  }

  if (harness.whileRunning) await t.test('driver-specific cases on the running workload', (t) => harness.whileRunning!(t, driver, spec));

  await t.test('stop with a grace: TERM ends it (143) within the grace, an exited event follows; again is a no-op', async (t) => {
    const before = events.length;
    const began = Date.now();
    await driver.stop(spec.id, GRACE_MS);
    t.ok(Date.now() - began < GRACE_MS, `stopped in ${Date.now() - began} ms`);
    t.match(await driver.inspect(spec.id), { state: 'exited', exitCode: 143 });
    t.match(await eventFor('exited', before), { type: 'exited' });
    await driver.stop(spec.id, 1000);
    t.match(await driver.inspect(spec.id), { state: 'exited' }, 'kept defined');
  });

  await t.test('remove deletes it and what it owns, a removed event follows; again is a no-op', async (t) => {
    const before = events.length;
    const owned = await harness.owned?.(spec);
    if (harness.owned) t.not(owned?.length, 0, `owned before: ${owned?.join(', ')}`);
    await driver.remove(spec.id);
    t.equal(await driver.inspect(spec.id), null);
    t.notOk((await driver.list(harness.node)).some((o) => o.id === spec.id));
    if (harness.owned) t.same(await harness.owned(spec), [], 'what it owned is gone');
    await eventFor('removed', before);
    await driver.remove(spec.id);
    t.equal(await driver.inspect(spec.id), null);
  });

  await driver.close();
}

function identityOf(spec: WorkloadSpec) {
  return { id: spec.id, node: spec.node, owner: spec.owner, blueprint: spec.blueprint, workload: spec.workload, specHash: spec.specHash, kind: spec.definition.kind };
}

/**
 * A folder holding one file, made a shared mount point as the pseudokernel's mount is
 * (Docker binds /zone with rslave propagation, which needs a shared or slave source).
 */
function sharedMountWith(t: Test, name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'zone-conformance-'));
  // Readable by others: a VM's qemu (libvirt's qemu user) shares it over 9p.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, name), content, { mode: 0o644 });
  execFileSync('mount', ['--bind', dir, dir]);
  execFileSync('mount', ['--make-shared', dir]);
  t.teardown(() => {
    // Lazy: a container that still holds it (a failed case) does not keep it from going.
    execFileSync('umount', ['--lazy', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

async function text(stream: Readable): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

/** Everything `stream` gives from now on, read as text. */
function collect(stream: Readable): () => string {
  let seen = '';
  stream.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  return () => seen;
}
