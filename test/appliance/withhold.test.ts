// After a restart under a trust policy that no longer lets the operator act for an
// owner, that owner's stored blueprints are withheld (their workloads removed, an event
// and a warning naming the owner) but keep their version; a policy that grants the
// owner again runs them again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { createAppliance, type ZoneAppliance } from '../../appliance/appliance.ts';
import { GIB } from '../../appliance/admission.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../appliance/config.ts';
import { ZoneError } from '../../lib/errors.ts';
import { createLogger } from '../../appliance/logger.ts';
import { readSigningKey } from '../../blueprints/keys.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import type { Blueprint } from '../../blueprints/schema.ts';
import { signBlueprint } from '../../blueprints/sign.ts';
import { FakeDriver } from '../../drivers/fake/driver.ts';
import { waitFor } from '../helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-withhold-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir }, cwd: dir });
const { policy: ownOnly, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const anyOwner: TrustPolicy = { ...ownOnly, signers: ownOnly.signers.map((s) => ({ ...s, owners: '*' })) };
const bob = generateSigningKeyPair();
// One engine for every incarnation of the appliance: what runs survives its restarts.
const driver = new FakeDriver();
let log = '';

async function start(trustPolicy: TrustPolicy): Promise<ZoneAppliance> {
  const logger = createLogger({ level: 'info', destination: new Writable({ write(chunk, _enc, cb) { log += String(chunk); cb(); } }) });
  const appliance = await createAppliance({ config, trustPolicy, logger, drivers: () => [driver], hostCapacity: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 100 * GIB } });
  appliance.start();
  return appliance;
}

const running = (owners: string[]) => driver.snapshot().filter((w) => w.state === 'running').map((w) => w.owner).sort().join() === [...owners].sort().join();

t.test('a blueprint the restarted node\'s policy no longer grants is withheld, visibly, and runs again once granted', async (t) => {
  let appliance = await start(anyOwner);
  const node = appliance.identity.id;
  const sign = (owner: string, version: number) => signBlueprint({
    name: 'web', version, owner, node, workloads: [{ name: 'a', kind: 'container', image: 'zone/busybox' }],
  } as Blueprint, operator.secretKey);
  const withheldCount = () => appliance.events({}).filter((e) => e.to === 'withheld').length;
  await appliance.submit(sign(bob.publicKey, 1));
  await appliance.submit(sign(operator.publicKey, 1));
  await waitFor(() => running([bob.publicKey, operator.publicKey]), { timeoutMs: 5000, what: 'both owners\' workloads running' });
  await appliance.close();

  appliance = await start(ownOnly);
  const withheld = appliance.events({}).find((e) => e.to === 'withheld');
  t.match(withheld, { owner: bob.publicKey, blueprint: 'web', from: 'v1' });
  t.ok(withheld?.reason.includes(`owner ${bob.publicKey} did not sign this blueprint, and operator may not act for it`), withheld?.reason ?? 'no event');
  t.match(log, /stored blueprint withheld: the trust policy no longer authorises its signers for its owner/);
  await waitFor(() => running([operator.publicKey]), { timeoutMs: 5000, what: 'bob\'s workload removed, the operator\'s kept' });
  t.same(appliance.listBlueprints().map((b) => b.owner), [operator.publicKey], 'only what the node runs is listed');
  // Withheld is not forgotten: the stored version still refuses a replay (here, refused first for the owner).
  await t.rejects(appliance.submit(sign(bob.publicKey, 1)), ZoneError);
  await appliance.close();

  appliance = await start(anyOwner);
  t.equal(withheldCount(), 1, 'not withheld again under a granting policy');
  await waitFor(() => running([bob.publicKey, operator.publicKey]), { timeoutMs: 5000, what: 'bob\'s workload back' });
  await t.rejects(appliance.submit(sign(bob.publicKey, 1)), { code: 'STALE' }, 'the stored version still stops a replay');
  await appliance.close();
});
