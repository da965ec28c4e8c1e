// The workload drivers this appliance runs, one line per driver. A driver whose
// engine is not there still loads: it reports itself unavailable and the engine
// marks its workloads `unknown` until the engine appears.
import type { Driver, DriverContext } from '../drivers/contract.ts';
import { DockerDriver } from '../drivers/docker/driver.ts';
import { LibvirtDriver } from '../drivers/libvirt/driver.ts';
import { join } from 'node:path';
import type { NetworkDriver, VolumeProvider } from '../drivers/contract.ts';
import { HostVolumes } from '../drivers/volumes/provider.ts';
import { WireguardDriver } from '../drivers/wireguard/driver.ts';

export function buildDrivers(ctx: DriverContext): Driver[] {
  return [
    new DockerDriver(ctx),
    new LibvirtDriver(ctx),
  ];
}

/** The overlay: WireGuard (kernel or wireguard-go), underlay = the namespace the appliance runs in. */
export function buildNetworkDriver(ctx: DriverContext): NetworkDriver {
  return new WireguardDriver(ctx);
}

/** Volumes: ext4 loop-mounted files and qcow2 disks, in the volumes folder of the drivers' data dir. */
export function buildVolumeProvider(ctx: DriverContext): VolumeProvider {
  return new HostVolumes(join(ctx.dataDir, 'volumes'), ctx.node);
}
