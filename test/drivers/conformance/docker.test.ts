// The driver contract against the real dockerd: a busybox container.
import t from 'tap';
import Docker from 'dockerode';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { DriverContext } from '../../../drivers/contract.ts';
import { DockerDriver } from '../../../drivers/docker/driver.ts';
import { ownerNetworkName } from '../../../drivers/docker/owner-network.ts';
import { workloadId } from '../../../drivers/names.ts';
import { testDockerDriver } from '../../helpers/docker-driver.ts';
import { CONFORMANCE_SCRIPT, driverConformance } from './suite.ts';

const NODE = `dconf${process.pid}`;
const OWNER = `ed25519:${Buffer.alloc(32, 5).toString('base64')}`;
const docker = new Docker();
const ctx: DriverContext = { node: NODE, dataDir: '/tmp', openSecret: () => { throw new Error('no secrets here'); } };

await driverConformance(t, {
  node: NODE,
  makeDriver: () => testDockerDriver(NODE).driver,
  makeUnreachableDriver: () => new DockerDriver(ctx, { socketPath: `/run/zone-no-dockerd-${process.pid}.sock` }),
  spec: ({ zoneMount }) => {
    const definition = normalizeWorkload({ name: 'probe', kind: 'container', image: 'zone/busybox', command: ['sh', '-c', CONFORMANCE_SCRIPT] });
    return {
      node: NODE, owner: OWNER, blueprint: 'conformance', workload: 'probe', id: workloadId(NODE, OWNER, 'conformance', 'probe'),
      specHash: specHash(definition), definition, ...(zoneMount ? { zoneMount } : {}),
    };
  },
  startMs: 20_000,
  eventMs: 20_000,
  // Its owner's network, made for its first container and removed with its last.
  owned: async (spec) => (await docker.listNetworks({ filters: { name: [ownerNetworkName(spec.node, spec.owner)] } })).map((n) => n.Name),
});
