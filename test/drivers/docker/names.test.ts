// Forced name collisions against the real dockerd: a container that holds a workload's
// name but records another identity (or none) is refused with an error naming both,
// never adopted, started, listed or removed.
import t from 'tap';
import type Docker from 'dockerode';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import type { WorkloadIdentity, WorkloadSpec } from '../../../drivers/contract.ts';
import { containerLabels, LABELS } from '../../../drivers/docker/spec.ts';
import { describeWorkload, legacyWorkloadId, workloadId } from '../../../drivers/names.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';

const NODE = `dn${process.pid}`;
const OWNER_A = `ed25519:${Buffer.alloc(32, 21).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 22).toString('base64')}`;
const { docker, driver } = testDockerDriver(NODE);

// The containers planted under other identities' labels.
t.teardown(async () => {
  const mine = await docker.listContainers({ all: true, filters: { label: [`zone-test=${NODE}`] } });
  await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
});

function specOf(owner: string, workload = 'web'): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: 'zone/busybox', command: ['sleep', '600'] } as ContainerWorkload);
  return { node: NODE, owner, blueprint: 'shop', workload, id: workloadId(NODE, owner, 'shop', workload), specHash: specHash(definition), definition };
}

/** A container made behind the driver's back: `name`, with the labels of `holder` (or none of ours). */
async function plant(name: string, holder: WorkloadSpec | null): Promise<Docker.Container> {
  return docker.createContainer({
    name, Image: 'zone/busybox', Cmd: ['sleep', '600'],
    Labels: { 'zone-test': NODE, ...(holder ? containerLabels(holder) : {}) },
  });
}

const labelsOf = async (name: string) => (await docker.getContainer(name).inspect()).Config.Labels;
const identity = (s: WorkloadSpec): WorkloadIdentity => ({ node: s.node, owner: s.owner, blueprint: s.blueprint, workload: s.workload });

t.test('a container with the wanted name and another owner\'s labels is refused naming both, and left as it was', async (t) => {
  const a = specOf(OWNER_A);
  const b = specOf(OWNER_B);
  // B's labels on A's name: what a 32-bit collision (or a forgery) would leave.
  await plant(a.id, b);
  const err = await driver.ensure(a).then(() => null, (e: unknown) => e as Error & { code?: string; field?: string });
  t.match(err, { code: 'WORKLOAD_SPEC', field: 'name' });
  t.match(err?.message, describeWorkload(identity(a)), 'names the wanted identity');
  t.match(err?.message, describeWorkload(identity(b)), 'names the identity the container records');
  const after = await docker.getContainer(a.id).inspect();
  t.equal(after.State.Status, 'created', 'never started');
  t.same(after.Config.Labels[LABELS.owner], OWNER_B, 'its labels are untouched');
  t.equal(await driver.inspect(a.id), null, 'not seen as a workload of ours');
  t.notOk((await driver.list(NODE)).some((o) => o.id === a.id), 'not listed, so the engine never removes it as "not desired"');
  // B's own name is free: B's workload is made there, beside the planted one.
  const made = await driver.ensure(b);
  t.equal(made.id, b.id);
  t.not(made.id, a.id);
  t.match(made, { owner: OWNER_B, state: 'running' });
  t.same(await labelsOf(a.id), { 'zone-test': NODE, ...containerLabels(b) }, 'the planted container is still there, unchanged');
  await driver.remove(b.id);
});

t.test('a container with the wanted name and no zone labels is refused and left alone', async (t) => {
  const a = specOf(OWNER_A, 'bare');
  await plant(a.id, null);
  await t.rejects(driver.ensure(a), { code: 'WORKLOAD_SPEC', field: 'name', message: /records no zone identity; it is left alone/ });
  t.equal((await docker.getContainer(a.id).inspect()).State.Status, 'created');
});

t.test('a container an older appliance named (32-bit hash) with our labels is listed as ours, so the engine replaces it', async (t) => {
  const a = specOf(OWNER_A, 'old');
  const legacy = legacyWorkloadId(NODE, OWNER_A, 'shop', 'old');
  await plant(legacy, a);
  t.match((await driver.list(NODE)).find((o) => o.id === legacy), { owner: OWNER_A, blueprint: 'shop', workload: 'old' });
  await driver.remove(legacy);
  t.equal(await driver.inspect(legacy), null);
});
