// One Docker bridge per owner, against the real dockerd: an owner's containers reach
// each other, another owner's are out of reach by IP, and the network goes with the
// owner's last container.
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload } from '../../../blueprints/schema.ts';
import { WorkloadSpecError, type WorkloadSpec } from '../../../drivers/contract.ts';
import { ownerNetworkCreateOptions, ownerNetworkName } from '../../../drivers/docker/owner-network.ts';
import { containerCreateOptions, LABELS } from '../../../drivers/docker/spec.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { opened, reachableFrom } from '../../helpers/probe.ts';
import { workloadId } from '../../../drivers/names.ts';

const NODE = `on${process.pid}`;
const OWNER_A = `ed25519:${Buffer.alloc(32, 0xa).toString('base64')}`;
const OWNER_B = `ed25519:${Buffer.alloc(32, 0xb).toString('base64')}`;
const { docker, driver } = testDockerDriver(NODE);

function specOf(owner: string, workload: string, fields: Partial<ContainerWorkload> = {}): WorkloadSpec {
  const definition = normalizeWorkload({ name: workload, kind: 'container', image: 'zone/busybox', command: ['httpd', '-f', '-p', '8080'], ...fields } as ContainerWorkload);
  return { node: NODE, owner, blueprint: 'bp', workload, id: workloadId(NODE, owner, 'bp', workload), specHash: specHash(definition), definition };
}

async function addressOf(id: string): Promise<string> {
  const info = await docker.getContainer(id).inspect();
  const networks = Object.values(info.NetworkSettings.Networks);
  if (networks.length !== 1 || !networks[0]?.IPAddress) throw new Error(`${id} is on ${networks.length} networks`);
  return networks[0].IPAddress;
}

t.test('the network is named by 128 bits of the full identity; plain containers join it, others do not', async (t) => {
  const name = ownerNetworkName(NODE, OWNER_A);
  t.match(name, /^zone-owner-[0-9a-f]{32}$/);
  t.not(ownerNetworkName(NODE, OWNER_B), name);
  t.not(ownerNetworkName(`${NODE}x`, OWNER_A), name, 'each node of a shared dockerd has its own');
  t.match(ownerNetworkCreateOptions(NODE, OWNER_A).Options?.['com.docker.network.bridge.name'], /^zo-[0-9a-f]{12}$/);
  t.equal(containerCreateOptions(specOf(OWNER_A, 'a'), null).HostConfig?.NetworkMode, name);
  t.equal(containerCreateOptions(specOf(OWNER_A, 'm', { networks: [{ name: 'mesh', ip: '10.88.1.10' }] }), null).HostConfig?.NetworkMode, 'none');
});

t.test('an owner\'s containers reach each other, not another owner\'s; the network goes with the last one', async (t) => {
  const [a1, a2, b1] = [specOf(OWNER_A, 'a1'), specOf(OWNER_A, 'a2'), specOf(OWNER_B, 'b1')];
  // Concurrently, as the engine does: one network per owner all the same.
  await Promise.all([a1, a2, b1].map((s) => driver.ensure(s)));
  const networks = await docker.listNetworks({ filters: { label: [`${LABELS.node}=${NODE}`] } });
  t.strictSame(networks.map((n) => n.Name).sort(), [ownerNetworkName(NODE, OWNER_A), ownerNetworkName(NODE, OWNER_B)].sort());
  t.equal(networks.find((n) => n.Name === ownerNetworkName(NODE, OWNER_B))?.Labels?.[LABELS.owner], OWNER_B, 'labelled with its owner');

  const [ipA2, ipB1] = await Promise.all([addressOf(a2.id), addressOf(b1.id)]);
  const fromA1 = await reachableFrom(a1.id, [`${ipA2}:8080`, `${ipB1}:8080`]);
  t.strictSame(opened(fromA1), [`${ipA2}:8080`], 'a1 reaches a2 and not b1');
  const fromB1 = await reachableFrom(b1.id, [`${ipA2}:8080`]);
  t.strictSame(opened(fromB1), [], 'b1 does not reach a2');

  await driver.remove(b1.id);
  t.equal((await docker.listNetworks({ filters: { name: [ownerNetworkName(NODE, OWNER_B)] } })).length, 0, 'B\'s network went with its last container');
  await driver.remove(a1.id);
  t.equal((await docker.listNetworks({ filters: { name: [ownerNetworkName(NODE, OWNER_A)] } })).length, 1, 'A\'s stays while a2 uses it');
  await driver.remove(a2.id);
  t.equal((await docker.listNetworks({ filters: { name: [ownerNetworkName(NODE, OWNER_A)] } })).length, 0);
});

t.test('a network of that name that is not this owner\'s is refused, never joined', async (t) => {
  const spec = specOf(OWNER_A, 'squat');
  await docker.createNetwork({ ...ownerNetworkCreateOptions(NODE, OWNER_B), Name: ownerNetworkName(NODE, OWNER_A) });
  const err = await driver.ensure(spec).then(() => null, (e: unknown) => e);
  t.type(err, WorkloadSpecError);
  t.match((err as Error).message, `should be node ${NODE}'s for owner ${OWNER_A}, and is node ${NODE}, owner ${OWNER_B}`);
  t.equal((await docker.listContainers({ all: true, filters: { name: [spec.id] } })).length, 0, 'no container was made');
  await docker.getNetwork(ownerNetworkName(NODE, OWNER_A)).remove();
});

t.test('a container on Docker\'s shared bridge (made before owner networks, or joined by hand) is moved to its owner\'s alone, without a restart', async (t) => {
  const spec = specOf(OWNER_A, 'old');
  const options = containerCreateOptions(spec, null);
  await docker.createContainer({ ...options, HostConfig: { ...options.HostConfig, NetworkMode: 'bridge' } });
  const first = await driver.ensure(spec);
  const joined = async () => Object.keys((await docker.getContainer(spec.id).inspect()).NetworkSettings.Networks).sort();
  t.strictSame(await joined(), [ownerNetworkName(NODE, OWNER_A)], 'moved when started');

  await docker.getNetwork('bridge').connect({ Container: spec.id });
  t.strictSame(await joined(), ['bridge', ownerNetworkName(NODE, OWNER_A)].sort(), 'joined to the shared bridge by hand');
  const again = await driver.ensure(spec);
  t.strictSame(await joined(), [ownerNetworkName(NODE, OWNER_A)], 'moved back while running');
  t.equal(again.startedAt, first.startedAt, 'not restarted');
  await driver.remove(spec.id);
});

t.test('a stopped container whose network was removed by hand starts again, in the network made again', async (t) => {
  const spec = specOf(OWNER_B, 'drift');
  await driver.ensure(spec);
  await docker.getContainer(spec.id).stop({ t: 0 });
  // Docker lets a network go while only stopped containers name it; they keep its old id.
  await docker.getNetwork(ownerNetworkName(NODE, OWNER_B)).remove();
  const again = await driver.ensure(spec);
  t.equal(again.state, 'running');
  const networks = (await docker.getContainer(spec.id).inspect()).NetworkSettings.Networks;
  const made = await docker.getNetwork(ownerNetworkName(NODE, OWNER_B)).inspect() as { Id: string };
  t.strictSame(Object.keys(networks), [ownerNetworkName(NODE, OWNER_B)]);
  t.equal(networks[ownerNetworkName(NODE, OWNER_B)]?.NetworkID, made.Id, 'joined to the network made again');
  await driver.remove(spec.id);
});
