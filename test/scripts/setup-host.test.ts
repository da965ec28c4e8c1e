// The host setup left every engine Zone drives answering.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);

t.test('dockerd answers and has the base image', async (t) => {
  const docker = new Docker();
  t.equal(String(await docker.ping()), 'OK');
  const version = await docker.version();
  t.match(version.ApiVersion, /^1\.\d+$/);
  const image = await docker.getImage('zone/busybox:latest').inspect();
  t.ok(image.Id.startsWith('sha256:'), 'zone/busybox:latest is present');
});

t.test('libvirt connects to qemu:///system and offers qemu domains', async (t) => {
  const { stdout } = await run('virsh', ['-c', 'qemu:///system', 'domcapabilities', '--virttype', 'qemu']);
  t.match(stdout, /<domain>qemu<\/domain>/);
});

t.test('wg and wireguard-go are runnable', async (t) => {
  const wg = await run('wg', ['--version']);
  t.match(wg.stdout, /wireguard-tools/);
  const wgo = await run('wireguard-go', ['--version']);
  t.match(wgo.stdout, /wireguard-go/);
});

t.test('nats-server is installed', async (t) => {
  const { stdout } = await run('nats-server', ['--version']);
  t.match(stdout, /nats-server: v2\./);
});

t.test('a VM kernel is cached', async (t) => {
  const { stdout } = await run('file', ['-L', '/var/cache/zone/kernel/vmlinuz']).catch(() => run('ls', ['-l', '/var/cache/zone/kernel/vmlinuz']));
  t.match(stdout, /vmlinuz/);
});
