// A DockerDriver for one test file's own node, against the real dockerd; when the file
// ends it is closed and everything of that node (containers, owner networks) removed.
import t from 'tap';
import Docker from 'dockerode';
import { removeNodeContainers } from '../../cli/cluster/grid.ts';
import type { DriverContext } from '../../drivers/contract.ts';
import { DockerDriver } from '../../drivers/docker/driver.ts';

/** `extra`: what the test's node provides beyond the basics (an image source). */
export function testDockerDriver(node: string, extra: Partial<DriverContext> = {}): { docker: Docker; driver: DockerDriver } {
  const docker = new Docker();
  const ctx: DriverContext = { node, dataDir: '/tmp', openSecret: () => { throw new Error('no secrets here'); }, ...extra };
  const driver = new DockerDriver(ctx, { removeGraceMs: 1000 });
  t.teardown(async () => {
    await driver.close();
    await removeNodeContainers([node]);
  });
  return { docker, driver };
}
