// The path tree of a /zone mount: areas, the self/ and proc/ views.
import t from 'tap';
import type { ProcEntry } from '../../../../appliance/pseudokernel/interfaces.ts';
import { locate, lookup, procView, selfView, volumesFile, type ViewNode } from '../../../../appliance/pseudokernel/mount/tree.ts';

function text(node: ViewNode | null): string | undefined {
  return node?.type === 'file' ? node.content.toString() : undefined;
}

function names(node: ViewNode | null): string[] | undefined {
  return node?.type === 'dir' ? [...node.entries.keys()].sort() : undefined;
}

t.test('locate tells the area of a path and the GridFs path below fs/', async (t) => {
  t.same(locate('/'), { area: 'root' });
  t.same(locate('/fs'), { area: 'fs', path: '/' });
  t.same(locate('/fs/a/b.txt'), { area: 'fs', path: '/a/b.txt' });
  t.same(locate('/proc'), { area: 'proc', rest: [] });
  t.same(locate('/proc/bp/web/state'), { area: 'proc', rest: ['bp', 'web', 'state'] });
  t.same(locate('/self/name'), { area: 'self', rest: ['name'] });
  t.same(locate('/fsx'), { area: 'none' });
  t.same(locate('/pipes'), { area: 'none' });
});

t.test('self/ has one line per fact, ip empty without an overlay address', async (t) => {
  const view = selfView({ name: 'web', blueprint: 'bp', node: 'n1', owner: 'ed25519:K', ip: null }, 1000);
  t.same(names(view), ['blueprint', 'ip', 'name', 'node', 'owner']);
  t.equal(text(lookup(view, ['name'])), 'web\n');
  t.equal(text(lookup(view, ['owner'])), 'ed25519:K\n');
  t.equal(text(lookup(view, ['ip'])), '\n');
  t.equal(text(lookup(selfView({ name: 'w', blueprint: 'b', node: 'n', owner: 'o', ip: '10.88.1.10' }, 0), ['ip'])), '10.88.1.10\n');
  t.equal(lookup(view, ['name', 'x']), null, 'nothing below a file');
  t.equal(lookup(view, ['nope']), null);
});

t.test('proc/<blueprint>/<workload>/volumes: one line per volume, NAME KIND SIZE USED TARGET ro|rw, paths escaped as in /proc/mounts', async (t) => {
  const entry: ProcEntry = {
    node: 'here', blueprint: 'bp', workload: 'db', kind: 'container', state: 'running', restarts: 0, since: '2025-01-02T03:04:05.000Z',
    volumes: [
      { name: 'data', kind: 'filesystem', sizeBytes: 67108864, usedBytes: 15360, target: '/data', readOnly: false },
      { name: 'ref', kind: 'filesystem', sizeBytes: 16777216, usedBytes: 0, target: '/my ref\\x', readOnly: true },
    ],
  };
  t.equal(text(lookup(procView([entry], 'here', 0), ['bp', 'db', 'volumes'])), 'data filesystem 67108864 15360 /data rw\nref filesystem 16777216 0 /my\\040ref\\134x ro\n');
  t.equal(volumesFile([{ name: 'disk', kind: 'block', sizeBytes: 1, usedBytes: 2, target: '/dev/vdb', readOnly: false }]), 'disk block 1 2 /dev/vdb rw\n');
  t.equal(volumesFile(), '');
});

t.test('proc/ groups workloads by blueprint; the local row wins over another node\'s of the same name', async (t) => {
  const row = (node: string, blueprint: string, workload: string, state: string): ProcEntry =>
    ({ node, blueprint, workload, kind: 'container', state, restarts: 2, since: '2025-01-02T03:04:05.000Z' });
  const entries = [row('b-node', 'bp', 'web', 'remote-b'), row('a-node', 'bp', 'web', 'remote-a'), row('here', 'bp', 'web', 'local'), row('a-node', 'bp', 'db', 'exited'), row('b-node', 'etl', 'job', 'running')];
  const view = procView(entries, 'here', 5000);
  t.same(names(view), ['bp', 'etl']);
  t.same(names(lookup(view, ['bp'])), ['db', 'web']);
  t.same(names(lookup(view, ['bp', 'web'])), ['kind', 'node', 'restarts', 'since', 'state', 'volumes']);
  t.equal(text(lookup(view, ['bp', 'web', 'volumes'])), '', 'no volumes: an empty file');
  t.equal(text(lookup(view, ['bp', 'web', 'state'])), 'local\n');
  t.equal(text(lookup(view, ['bp', 'web', 'restarts'])), '2\n');
  t.equal(text(lookup(view, ['bp', 'web', 'since'])), '2025-01-02T03:04:05.000Z\n');
  t.equal(lookup(view, ['bp', 'web', 'since'])?.mtimeMs, Date.parse('2025-01-02T03:04:05.000Z'), 'files date from the last state change');
  t.equal(text(lookup(procView(entries.filter((e) => e.node !== 'here'), 'here', 0), ['bp', 'web', 'node'])), 'a-node\n', 'else the first node by name');
  t.same(names(procView([], 'here', 0)), []);
});
