// Validation problems name the field and what would be accepted; the published JSON Schema is current.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { blueprintProblems, validateBlueprint } from '../../blueprints/parse.ts';
import { MAX_VERSION } from '../../blueprints/schema.ts';
import { blueprintJsonSchemaText, JSON_SCHEMA_PATH } from '../../blueprints/write-json-schema.ts';
import { exampleBlueprint, keys, refused } from './fixtures.ts';

const bp = exampleBlueprint(keys.alice);
const [camera, detector] = bp.workloads!;

t.test('the example blueprint is valid', async (t) => {
  t.same(blueprintProblems(bp), []);
});

t.test('schema problems carry the path and what is accepted', async (t) => {
  const problems = blueprintProblems({
    ...bp,
    colour: 'blue',
    workloads: [{ ...camera, resources: { memory: '64 MB' } }, { ...detector, kind: 'lambda' }, { ...detector, name: 'Bad_Name' }],
  });
  t.same(problems.map((p) => p.field), ['/colour', '/workloads/0/resources/memory', '/workloads/1/kind', '/workloads/2/name']);
  t.match(problems[0]!.message, /unknown field \(accepted here: name, version/);
  t.match(problems[1]!.message, /K M G T Ki Mi Gi Ti/);
  t.match(problems[2]!.message, /must be one of container, vm/);
  t.match(problems[3]!.message, /lower-case letters, digits and dashes/);
  refused(t, () => validateBlueprint({ ...bp, expires: '2027-02-30T00:00:00Z' }), 'INVALID', /real RFC 3339 date-time/, '/expires');
  refused(t, () => validateBlueprint({ ...bp, workloads: [{ ...camera, resources: { memory: '64Mi', gpu: 1 } }] }), 'INVALID', /unknown field \(accepted here: cpus, memory, disk, pids\)/, '/workloads/0/resources/gpu');
  refused(t, () => validateBlueprint({ ...bp, version: 0 }), 'INVALID', /greater or equal to 1/, '/version');
  refused(t, () => validateBlueprint({ ...bp, version: MAX_VERSION + 1 }), 'INVALID', /less or equal to 9007199254740990 .*a later version or tombstone can follow/, '/version');
  t.equal(validateBlueprint({ ...bp, version: MAX_VERSION }).version, MAX_VERSION, 'the largest version still takes a tombstone (version + 1 is safe)');
  t.ok(Number.isSafeInteger(MAX_VERSION + 1));
});

t.test('semantic rules: unique names, resolvable references, addresses inside subnets, empty tombstones', async (t) => {
  const cases: [string, unknown, string, RegExp][] = [
    ['duplicate workload', { ...bp, workloads: [camera, { ...detector, name: 'camera' }], pipes: [] }, '/workloads/1/name', /workload "camera" is declared twice/],
    ['duplicate network', { ...bp, networks: [bp.networks![0], { ...bp.networks![0], wireguard: undefined }] }, '/networks/1/name', /network "mesh" is declared twice/],
    ['unknown network', { ...bp, workloads: [{ ...camera, networks: [{ name: 'lan', ip: '10.0.0.2' }] }, detector] }, '/workloads/0/networks/0/name', /"lan" is not declared in networks \(declared: mesh\)/],
    ['ip outside subnet', { ...bp, workloads: [{ ...camera, networks: [{ name: 'mesh', ip: '10.88.2.10' }] }, detector] }, '/workloads/0/networks/0/ip', /not a host address of network mesh \(subnet 10\.88\.1\.0\/24\)/],
    ['network address', { ...bp, workloads: [{ ...camera, networks: [{ name: 'mesh', ip: '10.88.1.0' }] }, detector] }, '/workloads/0/networks/0/ip', /not a host address/],
    ['same ip twice', { ...bp, workloads: [camera, { ...detector, networks: camera!.networks }] }, '/workloads/1/networks/0/ip', /also given to workload camera/],
    ['subnet outside range', { ...bp, networks: [{ ...bp.networks![0], subnet: '10.99.1.0/24' }] }, '/networks/0/subnet', /not inside ipRange/],
    ['pipe to nowhere', { ...bp, pipes: [{ from: 'camera.stdout', to: 'ghost.stdin' }] }, '/pipes/0/to', /"ghost" is not declared/],
    ['pipe from stdin', { ...bp, pipes: [{ from: 'camera.stdin', to: 'detector.stdin' }] }, '/pipes/0/from', /WORKLOAD\.stdout/],
    ['pipe between remote ends', { ...bp, pipes: [{ from: 'n2/bp/a.stdout', to: 'n3/bp/b.stdin' }] }, '/pipes/0', /at least one end/],
    ['one stdout into two pipes', { ...bp, pipes: [{ from: 'camera.stdout', to: 'detector.stdin' }, { from: 'camera.stdout', to: 'n2/bp/b.stdin' }] }, '/pipes/1/from', /camera\.stdout is already joined by the pipe camera\.stdout -> detector\.stdin/],
    ['two pipes into one stdin', { ...bp, pipes: [{ from: 'camera.stdout', to: 'detector.stdin' }, { from: 'n2/bp/a.stdout', to: 'detector.stdin' }] }, '/pipes/1/to', /detector\.stdin is already joined/],
    ['tombstone with workloads', { ...bp, delete: true }, '/workloads', /a tombstone \(delete: true\) has no workloads/],
    ['old unbound sealed key', { ...bp, networks: [{ ...bp.networks![0], wireguard: { ...bp.networks![0]!.wireguard, privateKey: 'sealed:QUJDRA==' } }] },
      '/networks/0/wireguard/privateKey', /old format \(v1\).*re-seal it with zone seal .* --blueprint video-pipeline --field networks\/mesh\/wireguard\/privateKey/],
    ['old unbound sealed env', { ...bp, workloads: [{ ...camera, env: { TOKEN: 'sealed:QUJDRA==' } }, detector] }, '/workloads/0/env/TOKEN', /old format \(v1\).*--field workloads\/camera\/env\/TOKEN/],
    ['malformed sealed env', { ...bp, workloads: [{ ...camera, env: { TOKEN: 'sealed:not base64!' } }, detector] }, '/workloads/0/env/TOKEN', /starts with sealed: but is not a sealed value/],
  ];
  for (const [what, value, field, message] of cases) {
    const problems = blueprintProblems(JSON.parse(JSON.stringify(value)));
    const problem = problems.find((p) => p.field === field);
    t.ok(problem, `${what}: a problem at ${field}`, { problems });
    if (problem) t.match(problem.message, message, what);
  }
  t.same(blueprintProblems({ name: bp.name, version: 5, owner: bp.owner, node: 'node1', delete: true }), [], 'a bare tombstone is valid');
  t.same(blueprintProblems({ ...bp, pipes: [{ from: 'camera.stdout', to: 'node2/sink/reader.stdin' }] }), [], 'a pipe to a remote workload');
  t.same(blueprintProblems({ ...bp, pipes: [bp.pipes![0]!, bp.pipes![0]!] }), [], 'a pipe declared twice is one pipe');
});

t.test('the committed JSON Schema is what the TypeBox schema produces', async (t) => {
  t.equal(readFileSync(JSON_SCHEMA_PATH, 'utf8'), blueprintJsonSchemaText(), 'run: node --import tsx blueprints/write-json-schema.ts');
});
