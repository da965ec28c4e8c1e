// Workload spec -> container create options, without dockerd.
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../blueprints/normalize.ts';
import type { ContainerWorkload, Workload } from '../../../blueprints/schema.ts';
import { WorkloadSpecError, type WorkloadSpec } from '../../../drivers/contract.ts';
import { DEFAULT_CAPABILITIES, LABELS, containerCreateOptions, dockerTimestamp, replayWindow } from '../../../drivers/docker/spec.ts';
import { ownerNetworkName } from '../../../drivers/docker/owner-network.ts';

const OWNER = `ed25519:${Buffer.alloc(32, 7).toString('base64')}`;

function specOf(fields: Partial<ContainerWorkload> = {}): WorkloadSpec {
  const definition = normalizeWorkload({ name: 'web', kind: 'container', image: 'zone/busybox', ...fields } as Workload);
  return { node: 'node1', owner: OWNER, blueprint: 'shop', workload: 'web', id: 'zone-shop-web-0123abcd', specHash: specHash(definition), definition };
}

/** The field of the WorkloadSpecError `fn` throws. */
function thrownField(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof WorkloadSpecError) return err.field;
    throw err;
  }
  return undefined;
}

/** No secrets directory: the workload has no sealed value. */
const noSecrets = null;

t.test('a plain workload gets the safe defaults', async (t) => {
  const o = containerCreateOptions(specOf(), noSecrets);
  const h = o.HostConfig ?? {};
  t.equal(o.name, 'zone-shop-web-0123abcd');
  t.equal(o.Image, 'zone/busybox');
  t.notOk(h.Privileged, 'not privileged');
  t.same(h.CapDrop, ['ALL']);
  t.same(h.CapAdd, [...DEFAULT_CAPABILITIES].sort());
  t.same(h.SecurityOpt, ['no-new-privileges']);
  t.same(h.RestartPolicy, { Name: 'no' }, 'the engine restarts, not Docker');
  t.equal(h.NetworkMode, ownerNetworkName(specOf().node, specOf().owner), 'its owner\'s own bridge network, not Docker\'s shared one');
  t.equal(h.ReadonlyRootfs, false);
  t.same(h.Mounts, []);
  t.same(h.Devices, []);
  t.equal(h.Init, true);
  t.equal(o.OpenStdin, true);
  t.equal(o.StdinOnce, false, 'stdin survives detaches');
  t.equal(o.Tty, false);
  t.same(o.Healthcheck, { Test: ['NONE'] }, 'an image HEALTHCHECK is switched off');
  t.equal(o.Cmd, undefined, 'the image command when none is given');
  t.equal(h.LogConfig?.Type, 'json-file');
});

t.test('limits: cpus as NanoCpus, memory without extra swap, pids', async (t) => {
  const h = containerCreateOptions(specOf({ resources: { cpus: 0.5, memory: '64Mi', pids: 100 } }), noSecrets).HostConfig ?? {};
  t.equal(h.NanoCpus, 500_000_000);
  t.equal(h.Memory, 64 * 2 ** 20);
  t.equal(h.MemorySwap, 64 * 2 ** 20);
  t.equal(h.PidsLimit, 100);
});

t.test('labels say node, owner, blueprint, workload and spec hash', async (t) => {
  const spec = specOf();
  t.same(containerCreateOptions(spec, noSecrets).Labels, {
    [LABELS.node]: 'node1', [LABELS.owner]: OWNER, [LABELS.blueprint]: 'shop', [LABELS.workload]: 'web', [LABELS.specHash]: spec.specHash,
  });
});

t.test('privileged only when the workload asks', async (t) => {
  const h = containerCreateOptions(specOf({ privileged: true }), noSecrets).HostConfig ?? {};
  t.equal(h.Privileged, true);
  t.equal(h.CapDrop, undefined);
  t.same(h.SecurityOpt, ['no-new-privileges']);
});

t.test('extra capabilities are added to the default set, once', async (t) => {
  const h = containerCreateOptions(specOf({ capabilities: ['NET_ADMIN', 'CHOWN'] }), noSecrets).HostConfig ?? {};
  t.same(h.CapAdd, [...new Set([...DEFAULT_CAPABILITIES, 'NET_ADMIN'])].sort());
  t.same(h.CapDrop, ['ALL']);
});

t.test('command, workdir, read-only rootfs, mounts, devices and ports as given', async (t) => {
  const o = containerCreateOptions(specOf({
    command: ['sh', '-c', 'echo hi'],
    workdir: '/srv',
    readOnlyRootfs: true,
    mounts: [{ source: '/var/data', target: '/data', readOnly: true }],
    devices: ['/dev/fuse'],
    ports: [{ container: 80, host: 8080 }, { container: 53, host: 5353, protocol: 'udp' }],
  }), noSecrets);
  const h = o.HostConfig ?? {};
  t.same(o.Cmd, ['sh', '-c', 'echo hi']);
  t.equal(o.WorkingDir, '/srv');
  t.equal(h.ReadonlyRootfs, true);
  t.same(h.Mounts, [{ Type: 'bind', Source: '/var/data', Target: '/data', ReadOnly: true }]);
  t.same(h.Devices, [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' }]);
  t.same(o.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  t.same(h.PortBindings, { '80/tcp': [{ HostPort: '8080' }], '53/udp': [{ HostPort: '5353' }] });
});

t.test('a /zone mount is bound at /zone with rslave propagation, and the spec hash stays as it was', async (t) => {
  const spec = specOf({ mounts: [{ source: '/var/data', target: '/data', readOnly: true }] });
  const o = containerCreateOptions({ ...spec, zoneMount: '/var/lib/zone/zone/zone-shop-web-0123abcd' }, noSecrets);
  t.same(o.HostConfig?.Mounts, [
    { Type: 'bind', Source: '/var/data', Target: '/data', ReadOnly: true },
    { Type: 'bind', Source: '/var/lib/zone/zone/zone-shop-web-0123abcd', Target: '/zone', ReadOnly: false, BindOptions: { Propagation: 'rslave' } },
  ]);
  t.equal(o.Labels?.[LABELS.specHash], spec.specHash);
  t.equal(o.Labels?.[LABELS.specHash], containerCreateOptions(spec, noSecrets).Labels?.[LABELS.specHash]);
  const own = specOf({ mounts: [{ source: '/srv', target: '/srv' }, { source: '/var/data', target: '/zone/data' }] });
  t.equal(thrownField(() => containerCreateOptions({ ...own, zoneMount: '/z' }, noSecrets)), 'mounts[1].target', 'a mount of its own inside /zone is refused naming it');
  t.doesNotThrow(() => containerCreateOptions(own, noSecrets), 'and taken where the node has no pseudokernel');
});

t.test('networks: the owner\'s bridge by default, none on zone networks, host only when asked', async (t) => {
  t.equal(containerCreateOptions(specOf({ networks: [{ name: 'mesh', ip: '10.88.1.10' }] }), noSecrets).HostConfig?.NetworkMode, 'none');
  const host = containerCreateOptions(specOf({ hostNetwork: true }), noSecrets);
  t.equal(host.HostConfig?.NetworkMode, 'host');
  t.equal(host.Hostname, undefined, 'Docker refuses a hostname on the host network');
});

t.test('contradictory network settings are refused naming the field', async (t) => {
  t.equal(thrownField(() => containerCreateOptions(specOf({ hostNetwork: true, networks: [{ name: 'mesh', ip: '10.88.1.10' }] }), noSecrets)), 'networks');
  t.equal(thrownField(() => containerCreateOptions(specOf({ networks: [{ name: 'mesh', ip: '10.88.1.10' }], ports: [{ container: 80, host: 8080 }] }), noSecrets)), 'ports');
  t.equal(thrownField(() => containerCreateOptions(specOf({ hostNetwork: true, ports: [{ container: 80, host: 8080 }] }), noSecrets)), 'ports');
});

t.test('health becomes a Docker healthcheck in nanoseconds', async (t) => {
  const o = containerCreateOptions(specOf({ health: { command: ['sh', '-c', 'true'], interval: '2s', timeout: '1s', retries: 2 } }), noSecrets);
  t.same(o.Healthcheck, { Test: ['CMD', 'sh', '-c', 'true'], Interval: 2e9, Timeout: 1e9, Retries: 2, StartPeriod: 0 });
});

t.test('sealed env values become VAR_FILE naming a file of the read-only secrets mount; the value is nowhere in the options', async (t) => {
  const sealed = 'sealed:v2:QUJDRA==';
  const o = containerCreateOptions(specOf({ env: { B: 'plain', A: sealed } }), '/dev/shm/zone-secrets/node1/zone-shop-web-0123abcd');
  t.same(o.Env, ['A_FILE=/run/zone/secrets/A', 'B=plain']);
  t.same(o.HostConfig?.Mounts, [{ Type: 'bind', Source: '/dev/shm/zone-secrets/node1/zone-shop-web-0123abcd', Target: '/run/zone/secrets', ReadOnly: true }]);
  t.notMatch(JSON.stringify(o), sealed);
  t.equal(thrownField(() => containerCreateOptions(specOf({ env: { A: sealed, A_FILE: '/x' } }), '/d')), 'env.A_FILE', 'VAR_FILE is taken by the sealed VAR');
  t.equal(thrownField(() => containerCreateOptions(specOf({ env: { A: sealed } }), null)), 'env', 'no secrets directory, no container');
  t.same(containerCreateOptions(specOf({ env: { A: 'plain' } }), null).HostConfig?.Mounts, [], 'no sealed value, no mount');
});

t.test('the stdin of a pipe\'s end closes with its feeder\'s attach (StdinOnce); a piped stdout is logged in the cheaper local format', async (t) => {
  const piped = (streams: { stdin?: 'pipe'; stdout?: 'pipe' }): WorkloadSpec => {
    const spec = specOf();
    return { ...spec, definition: { ...spec.definition, ...streams } };
  };
  t.match(containerCreateOptions(piped({ stdin: 'pipe' }), noSecrets), { OpenStdin: true, StdinOnce: true, Tty: false });
  t.match(containerCreateOptions(piped({ stdout: 'pipe' }), noSecrets), { OpenStdin: true, StdinOnce: false, Tty: false });
  t.same(containerCreateOptions(piped({ stdout: 'pipe' }), noSecrets).HostConfig?.LogConfig, { Type: 'local', Config: { 'max-size': '10m', 'max-file': '3', compress: 'false' } });
  t.equal(containerCreateOptions(piped({ stdin: 'pipe' }), noSecrets).HostConfig?.LogConfig?.Type, 'json-file', 'a piped stdin alone keeps json-file');
});

t.test('Docker times become since/until timestamps with their nanoseconds', async (t) => {
  t.equal(dockerTimestamp('2024-05-01T10:00:00.123456789Z'), '1714557600.123456789');
  t.equal(dockerTimestamp('2024-05-01T10:00:00.5Z'), '1714557600.500000000');
  t.equal(dockerTimestamp('2024-05-01T10:00:00Z'), '1714557600.000000000');
  t.equal(dockerTimestamp('2024-05-01T10:00:00.050000001Z', -100), '1714557599.950000001', 'moved back across a second');
  t.equal(dockerTimestamp('2024-05-01T12:00:00.25+02:00'), '1714557600.250000000');
  t.throws(() => dockerTimestamp('yesterday'), /"yesterday" is not an RFC 3339 time/);
});

t.test('the log of one incarnation: from halfway after the end before while it runs, within margins once it has exited', async (t) => {
  const rows: { what: string; incarnation: Parameters<typeof replayWindow>[0]; window: ReturnType<typeof replayWindow> }[] = [
    { what: 'a first run: the whole log is its own', incarnation: { startedAt: '2024-05-01T10:00:00.5Z', finishedAt: null, running: true }, window: { since: '0' } },
    { what: 'a restart 3 s after the end before: halfway, 1.5 s on either side', incarnation: { startedAt: '2024-05-01T10:00:03.000000001Z', finishedAt: '2024-05-01T10:00:00Z', running: true }, window: { since: '1714557601.500000000' } },
    { what: 'a restart 40 ms after the end before: 20 ms on either side', incarnation: { startedAt: '2024-05-01T10:00:00.04Z', finishedAt: '2024-05-01T10:00:00Z', running: true }, window: { since: '1714557600.020000000' } },
    { what: 'an end before that is not before the start: the margin', incarnation: { startedAt: '2024-05-01T10:00:00Z', finishedAt: '2024-05-01T10:00:00Z', running: true }, window: { since: '1714557599.900000000' } },
    { what: 'exited: the margin before its start, 2 s after its end', incarnation: { startedAt: '2024-05-01T10:00:00Z', finishedAt: '2024-05-01T10:00:05.25Z', running: false }, window: { since: '1714557599.900000000', until: '1714557607.250000000' } },
  ];
  for (const row of rows) t.same(replayWindow(row.incarnation), row.window, row.what);
});

t.test('a vm workload is not the docker driver\'s', async (t) => {
  const definition = normalizeWorkload({ name: 'vm1', kind: 'vm', image: 'zone/busybox' });
  const spec: WorkloadSpec = { ...specOf(), definition };
  t.equal(thrownField(() => containerCreateOptions(spec, noSecrets)), 'kind');
});

t.test('a volume mount binds the path the engine gave for the volume; without one it is refused naming the volume', async (t) => {
  const spec = specOf({ mounts: [{ volume: 'data', target: '/data' }, { volume: 'data', target: '/ro', readOnly: true }] });
  const o = containerCreateOptions({ ...spec, volumePaths: { data: '/var/lib/zone/drivers/volumes/zv-1/mnt' } }, noSecrets);
  t.same(o.HostConfig?.Mounts, [
    { Type: 'bind', Source: '/var/lib/zone/drivers/volumes/zv-1/mnt', Target: '/data', ReadOnly: false },
    { Type: 'bind', Source: '/var/lib/zone/drivers/volumes/zv-1/mnt', Target: '/ro', ReadOnly: true },
  ]);
  t.equal(thrownField(() => containerCreateOptions(spec, noSecrets)), 'mounts.data');
  const inZone = specOf({ mounts: [{ volume: 'data', target: '/zone/data' }] });
  t.equal(thrownField(() => containerCreateOptions({ ...inZone, volumePaths: { data: '/v' }, zoneMount: '/z' }, noSecrets)), 'mounts[0].target', 'a volume inside /zone is refused too');
});
