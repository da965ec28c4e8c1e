// zone image box [--image zone-node.qcow2] [--out zone-node.box]: the node image as a
// vagrant-libvirt box (cli/node-image/box.ts), for the top-level Vagrantfile.
// zone image accelerator: which accelerator a VM gets here (kvm or tcg, and why), by the
// libvirt driver's own probe; the Vagrantfile picks libvirt's driver from it.
import type { Command } from 'commander';
import { probeAccelerator } from '../../drivers/libvirt/accelerator.ts';
import { bootFilesBeside, writeVagrantBox } from '../node-image/box.ts';
import { action, CliFailure } from '../output.ts';

/** The node image's kernel command line (its root is the box's first virtio disk). */
export const NODE_IMAGE_CMDLINE = 'root=/dev/vda console=ttyS0 quiet loglevel=3 panic=5';
const VM_KERNEL = '/var/cache/zone/kernel/vmlinuz';

export function registerImageBox(image: Command): void {
  image
    .command('box')
    .description('write a vagrant-libvirt box of the node image (metadata.json, Vagrantfile, box.img, and the kernel and initrd beside the image, if any)')
    .option('--image <file>', 'the node image (a qcow2; `zone image build` writes it with FILE.vmlinuz and FILE.initrd beside it)', 'zone-node.qcow2')
    .option('--out <file>', 'the box to write', 'zone-node.box')
    .option('--cmdline <line>', 'the kernel command line, when the image boots a kernel beside it', NODE_IMAGE_CMDLINE)
    .action(action(async (opts: { image: string; out: string; cmdline: string }) => {
      const boot = bootFilesBeside(opts.image);
      const box = await writeVagrantBox({ disk: opts.image, ...(boot ? { boot: { ...boot, cmdline: opts.cmdline } } : {}) }, opts.out)
        .catch((err: Error) => { throw new CliFailure(`zone image box: ${err.message}`); });
      const carries = boot ? `, booting ${boot.kernel} and ${boot.initrd}` : ', booting its own disk';
      process.stdout.write(`wrote ${box.out} (${(box.bytes / 2 ** 20).toFixed(1)} MiB, disk of ${box.virtualSizeGb} GB${carries})\n`);
      process.stdout.write(`add it with: vagrant box add --name zone-node ${box.out}\n`);
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
