// zone image box [--image zone-node.qcow2] [--out zone-node.box]: the node image as a
// vagrant-libvirt box (cli/node-image/box.ts), for the top-level Vagrantfile.
// zone image config-disk --out FILE --address CIDR ...: a stand-alone node's config disk
// (cli/node-image/node-config.ts), which the Vagrantfile makes for each of its nodes.
// zone image accelerator: which accelerator a VM gets here (kvm or tcg, and why), by the
// libvirt driver's own probe; the Vagrantfile picks libvirt's driver from it.
import type { Command } from 'commander';
import { probeAccelerator } from '../../drivers/libvirt/accelerator.ts';
import { bootFilesBeside, writeVagrantBox } from '../node-image/box.ts';
import { bootCommandLine } from '../node-image/build.ts';
import { ConfigDiskError } from '../node-image/config-disk.ts';
import { writeStandaloneConfigDisk } from '../node-image/node-config.ts';
import { action, CliFailure } from '../output.ts';

const VM_KERNEL = '/var/cache/zone/kernel/vmlinuz';

export function registerImageBox(image: Command): void {
  image
    .command('box')
    .description('write a vagrant-libvirt box of the node image (metadata.json, Vagrantfile, box.img, and the kernel and initrd beside the image, if any)')
    .option('--image <file>', 'the node image (a qcow2; `zone image build` writes it with FILE.vmlinuz and FILE.initrd beside it)', 'zone-node.qcow2')
    .option('--out <file>', 'the box to write', 'zone-node.box')
    .option('--cmdline <line>', 'the kernel command line, when the image boots a kernel beside it', bootCommandLine())
    .action(action(async (opts: { image: string; out: string; cmdline: string }) => {
      const boot = bootFilesBeside(opts.image);
      const box = await writeVagrantBox({ disk: opts.image, ...(boot ? { boot: { ...boot, cmdline: opts.cmdline } } : {}) }, opts.out)
        .catch((err: Error) => { throw new CliFailure(`zone image box: ${err.message}`); });
      const carries = boot ? `, booting ${boot.kernel} and ${boot.initrd}` : ', booting its own disk';
      process.stdout.write(`wrote ${box.out} (${(box.bytes / 2 ** 20).toFixed(1)} MiB, disk of ${box.virtualSizeGb} GB${carries})\n`);
      process.stdout.write(`add it with: vagrant box add --name zone-node ${box.out}\n`);
    }));

  image
    .command('config-disk')
    .description('write a stand-alone node\'s config disk: its address (the API listens there), the operator key it trusts, its identity')
    .requiredOption('--out <file>', 'the config disk to write (a vfat image, 0600: it holds the node\'s secret keys)')
    .requiredOption('--address <cidr>', 'the node\'s IPv4 address and prefix length, e.g. 10.217.0.11/24')
    .option('--gateway <ip>', 'its default route')
    .option('--hostname <name>', 'its host name')
    .requiredOption('--operator-key <file>', 'the key the node trusts (for every owner); made when the file does not exist')
    .requiredOption('--identity <dir>', 'where the node\'s keys are made, or kept from an earlier run (the node keeps its id)')
    .action(action(async (opts: { out: string; address: string; gateway?: string; hostname?: string; operatorKey: string; identity: string }) => {
      const network = { address: opts.address, ...(opts.gateway ? { gateway: opts.gateway } : {}), ...(opts.hostname ? { hostname: opts.hostname } : {}) };
      const node = await writeStandaloneConfigDisk(opts.out, { network, operatorKey: opts.operatorKey, identityDir: opts.identity })
        .catch((err: unknown) => { throw err instanceof ConfigDiskError ? new CliFailure(err.message) : err; });
      process.stdout.write(`wrote ${opts.out}: node ${node.id}, API ${node.api}, trusting ${node.operatorPublicKey} (${opts.operatorKey})\n`);
    }));

  image
    .command('accelerator')
    .description('print which accelerator a VM gets on this machine (kvm or tcg), then why: a KVM guest must boot, /dev/kvm alone is not enough')
    .option('--kernel <file>', 'the kernel the probe boots', VM_KERNEL)
    .action(action(async (opts: { kernel: string }) => {
      const probe = await probeAccelerator({ kernel: opts.kernel });
      process.stdout.write(`${probe.accelerator}\n${probe.reason}\n`);
    }));
}
