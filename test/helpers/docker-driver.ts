// A DockerDriver for one test file's own node, against the real dockerd; when the file
// ends it is closed and everything of that node (containers, owner networks) removed.
import t from 'tap';
import Docker from 'dockerode';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import type { DriverContext } from '../../drivers/contract.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';

export function testDockerDriver(node: string): { docker: Docker; driver: DockerDriver } {
  const docker = new Docker();
  const ctx: DriverContext = { node, dataDir: '/tmp', openSecret: () => { throw new Error('no secrets here'); } };
  const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
  t.teardown(async () => {
    await driver.close();
    await removeNodeContainers([node]);
  });
  return { docker, driver };
}
