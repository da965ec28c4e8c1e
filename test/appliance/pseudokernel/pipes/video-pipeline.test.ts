// blueprints/examples/video-pipeline.yaml as written (but for the test's own owner key,
// node and sealed WireGuard key) through the appliance with the real Docker, libvirt and
// WireGuard drivers and the pseudokernel: the camera container's lines reach the detector
// VM's stdin through the pipe. Run it under `flock /tmp/zone-vm.lock`.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import t from 'tap';
import { GIB } from '../../../../appliance/admission.ts';
import { createAppliance } from '../../../../appliance/appliance.ts';
import { loadNodeConfig, loadOrCreateTrustPolicy } from '../../../../appliance/config.ts';
import { readSigningKey } from '../../../../blueprints/keys.ts';
import { parseBlueprintText } from '../../../../blueprints/parse.ts';
import type { Blueprint } from '../../../../blueprints/schema.ts';
import { sealSecret } from '../../../../blueprints/seal.ts';
import { signBlueprint } from '../../../../blueprints/sign.ts';
import { DockerDriver } from '../../../../drivers/docker/driver.ts';
import { LibvirtDriver } from '../../../../drivers/libvirt/driver.ts';
import { networkId, workloadId } from '../../../../drivers/names.ts';
import { WireguardDriver } from '../../../../drivers/wireguard/driver.ts';
import { generateWireguardKeyPair } from '../../../../drivers/wireguard/keys.ts';
import { freeLoopbackPorts } from '../../../helpers/ports.ts';
import { waitFor } from '../../../helpers/wait.ts';

const EXAMPLE = fileURLToPath(new URL('../../../../blueprints/examples/video-pipeline.yaml', import.meta.url));
const dir = mkdtempSync('/var/tmp/zone-video-');
chmodSync(dir, 0o711); // qemu walks to the initrd and binds its sockets under the data dir
const [natsPort] = (await freeLoopbackPorts(1)) as [number];
const config = loadNodeConfig({ env: { ZONE_DATA_DIR: dir, ZONE_NATS_LISTEN: `127.0.0.1:${natsPort}` }, cwd: dir });
const { policy, createdOperatorKey } = loadOrCreateTrustPolicy(config);
const operator = readSigningKey(createdOperatorKey!);
const appliance = await createAppliance({
  config, trustPolicy: policy, logger: pino({ level: process.env.ZONE_TEST_LOG ?? 'silent' }),
  drivers: (ctx) => [new DockerDriver(ctx, { removeGraceMs: 0 }), new LibvirtDriver(ctx, { removeGraceMs: 0 })],
  networks: (ctx) => new WireguardDriver(ctx),
  hostCapacity: { cpus: 2, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
  backoff: { firstMs: 200, maxMs: 2000, stableMs: 60_000, crashloopAfter: 5 },
  pseudokernel: {},
});
const { id: node, box } = appliance.identity;
const owner = operator.publicKey;
const ok = (cmd: string, ...args: string[]) => spawnSync(cmd, args).status === 0;

t.teardown(async () => {
  await appliance.close();
  const detector = workloadId(node, owner, 'video-pipeline', 'detector');
  ok('virsh', '-c', 'qemu:///system', 'destroy', detector);
  ok('virsh', '-c', 'qemu:///system', 'undefine', detector);
  ok('docker', 'rm', '-f', workloadId(node, owner, 'video-pipeline', 'camera'));
  ok('ip', 'netns', 'del', networkId({ node, owner, blueprint: 'video-pipeline', network: 'mesh' }));
  rmSync(dir, { recursive: true, force: true });
});
appliance.start();

t.test('the example applies: the camera\'s lines reach the detector VM through the pipe', async (t) => {
  const example = parseBlueprintText(readFileSync(EXAMPLE, 'utf8'), 'yaml') as Blueprint & { signatures?: unknown };
  const { signatures: _none, expires: _expires, ...document } = example;
  const mesh = document.networks![0]!;
  const privateKey = sealSecret(generateWireguardKeyPair().privateKey, box.publicKey, { owner, node, blueprint: document.name, field: 'networks/mesh/wireguard/privateKey' });
  const blueprint = { ...document, owner, node, networks: [{ ...mesh, wireguard: { ...mesh.wireguard!, privateKey } }] };
  await appliance.submit(signBlueprint(blueprint, operator.secretKey));

  const detected = await waitFor(async () => {
    let text = '';
    for await (const chunk of await appliance.logs('video-pipeline', 'detector', { follow: false })) text += String(chunk);
    // Only lines whose newline has arrived: the log may be read while a line is half written.
    const frames = (text.match(/^detected: [^\r\n]+\r?\n/gm) ?? []).map((line) => line.trimEnd());
    return frames.length >= 3 && frames;
  }, { timeoutMs: 200_000, what: 'three of the camera\'s lines detected in the VM' });
  t.comment(detected.slice(0, 3).join('\n'));
  const broken = detected.filter((line) => !/^detected: \w{3} \w{3} +\d+ \d\d:\d\d:\d\d \w+ \d{4}$/.test(line));
  t.same(broken, [], `the camera's dates, whole (${detected.length} lines)`);
  const states = appliance.getBlueprint('video-pipeline')?.workloads.map((w) => [w.workload, w.state]);
  t.same(Object.fromEntries(states ?? []), { camera: 'running', detector: 'running' });
});
