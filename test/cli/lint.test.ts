// zone lint, run as a child process: every problem on its own line with its field path.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runZone } from '../helpers/zone-cli.ts';
import { EXAMPLE_PATH } from '../blueprints/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'zone-test-cli-lint-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a valid blueprint is ok', async (t) => {
  const run = await runZone(['lint', EXAMPLE_PATH], { cwd: dir });
  t.same([run.code, run.stdout], [0, `${EXAMPLE_PATH}: ok (video-pipeline v4, 2 workload(s))\n`]);
  t.match(run.stderr, `${EXAMPLE_PATH}: /workloads/0/image: warning: workload camera: image zone/busybox is not pinned (name@sha256:DIGEST)`, 'an unpinned image is warned of, on stderr');
});

t.test('each problem is printed with its field; exit 1', async (t) => {
  writeFileSync(join(dir, 'bad.yaml'), [
    'name: shop', 'version: 1', 'owner: ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=', 'node: node1', 'colour: blue',
    'workloads:', '  - { name: www, kind: container, image: zone/busybox, resources: { memory: 64MB } }',
    '  - { name: db, kind: database, image: pg }', '',
  ].join('\n'));
  const run = await runZone(['lint', 'bad.yaml'], { cwd: dir });
  t.equal(run.code, 1);
  t.equal(run.stdout, [
    'bad.yaml: /colour: unknown field (accepted here: name, version, owner, node, expires, delete, networks, volumes, workloads, pipes, signatures)',
    'bad.yaml: /workloads/0/resources/memory: must be bytes, with an optional unit: K M G T Ki Mi Gi Ti',
    'bad.yaml: /workloads/1/kind: must be one of container, vm', '',
  ].join('\n'));
  t.equal(run.stderr, 'zone: bad.yaml: 3 problem(s)\n');
});

t.test('unreadable YAML is one line; stdin works', async (t) => {
  writeFileSync(join(dir, 'tag.yaml'), 'name: !!binary aGVsbG8=\n');
  const tag = await runZone(['lint', 'tag.yaml'], { cwd: dir });
  t.same([tag.code, tag.stderr], [1, 'zone: tag.yaml: YAML tags are not accepted (found tag:yaml.org,2002:binary)\n']);
  const stdin = await runZone(['lint', '-'], { cwd: dir, input: 'name: x\n' });
  t.equal(stdin.code, 1);
  t.match(stdin.stdout, /^-: \/version: required field is missing\n/);
});
