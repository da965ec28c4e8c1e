// Pipe resolution and the producer's and feeder's rules, without NATS or Docker.
import t from 'tap';
import { normalizeWorkload, specHash } from '../../../../blueprints/normalize.ts';
import type { Blueprint, Workload } from '../../../../blueprints/schema.ts';
import { desiredWorkloads } from '../../../../appliance/engine/desired.ts';
import { localPipeEnds, parsePipeEnd, pipeIdentity, pipedStreams, type PipedBlueprint } from '../../../../blueprints/pipes.ts';
import {
  feedStep, pipeMessageOf, resumeFrom, type FeedState, type FeedStep, type PipeMessage, type Resume,
} from '../../../../appliance/pseudokernel/pipes/ends.ts';
import { START_POSITION, parsePosition } from '../../../../appliance/pseudokernel/pipes/stream.ts';
import type { StoredBlueprint } from '../../../../appliance/store.ts';

const OWNER = `ed25519:${Buffer.alloc(32, 9).toString('base64')}`;
const bp = (name: string, pipes: PipedBlueprint['pipes']): PipedBlueprint => ({ name, owner: OWNER, pipes });

t.test('a pipe end is qualified with this node and blueprint unless it names its own', async (t) => {
  t.same(parsePipeEnd('camera.stdout', 'n1', 'video'), { node: 'n1', blueprint: 'video', workload: 'camera', stream: 'stdout' });
  t.same(parsePipeEnd('n2/sink/reader.stdin', 'n1', 'video'), { node: 'n2', blueprint: 'sink', workload: 'reader', stream: 'stdin' });
  t.throws(() => parsePipeEnd('camera.stderr', 'n1', 'video'), /pipe end "camera.stderr" is not WORKLOAD.stdout\|stdin/);
});

t.test('local pipe ends: which run on this node, with the stream both nodes derive', async (t) => {
  const same = pipeIdentity(OWNER, 'n1/video/camera.stdout', 'n1/video/detector.stdin');
  const cross = pipeIdentity(OWNER, 'n1/video/camera.stdout', 'n2/sink/reader.stdin');
  const brief = (node: string, b: PipedBlueprint) => localPipeEnds(node, b).map((e) => [e.role, e.workload, e.id]);
  const cases: [string, string, PipedBlueprint, unknown[]][] = [
    ['no pipes', 'n1', bp('video', undefined), []],
    ['both ends here', 'n1', bp('video', [{ from: 'camera.stdout', to: 'detector.stdin' }]), [['produce', 'camera', same.id], ['consume', 'detector', same.id]]],
    ['declared twice, run once', 'n1', bp('video', [{ from: 'camera.stdout', to: 'detector.stdin' }, { from: 'camera.stdout', to: 'detector.stdin' }]), [['produce', 'camera', same.id], ['consume', 'detector', same.id]]],
    ['an end naming this node and blueprint is local', 'n1', bp('video', [{ from: 'camera.stdout', to: 'n1/video/detector.stdin' }]), [['produce', 'camera', same.id], ['consume', 'detector', same.id]]],
    ['to another node: the producer here', 'n1', bp('video', [{ from: 'camera.stdout', to: 'n2/sink/reader.stdin' }]), [['produce', 'camera', cross.id]]],
    ['from another node: the consumer there, same pipe', 'n2', bp('sink', [{ from: 'n1/video/camera.stdout', to: 'reader.stdin' }]), [['consume', 'reader', cross.id]]],
    ['another blueprint of this node is not this one\'s', 'n1', bp('video', [{ from: 'camera.stdout', to: 'n1/sink/reader.stdin' }]), [['produce', 'camera', pipeIdentity(OWNER, 'n1/video/camera.stdout', 'n1/sink/reader.stdin').id]]],
  ];
  for (const [what, node, blueprint, expected] of cases) t.same(brief(node, blueprint), expected, what);

  t.not(pipeIdentity(`ed25519:${Buffer.alloc(32, 1).toString('base64')}`, cross.from, cross.to).id, cross.id, 'another owner, another pipe');
  t.match(cross, { stream: `ZONE_PIPE_${cross.id}`, subject: `zone.pipe.${cross.id}`, positionKey: cross.id });
  t.match(cross.id, /^[0-9a-f]{32}$/, 'stream-, subject- and key-safe');
  const [end] = localPipeEnds('n1', bp('video', [{ from: 'camera.stdout', to: 'n2/sink/reader.stdin' }]));
  t.match(end, { from: 'n1/video/camera.stdout', to: 'n2/sink/reader.stdin', blueprint: 'video', owner: OWNER });
});

t.test('piped streams are in the spec, so adding a pipe changes the hash and nothing else does', async (t) => {
  const pipes = [{ from: 'camera.stdout', to: 'detector.stdin' }];
  t.same(pipedStreams('n1', bp('video', pipes), 'camera'), { stdout: 'pipe' });
  t.same(pipedStreams('n1', bp('video', pipes), 'detector'), { stdin: 'pipe' });
  t.same(pipedStreams('n1', bp('video', pipes), 'other'), {});

  const workloads: Workload[] = ['camera', 'detector', 'logger'].map((name) => ({ name, kind: 'container', image: 'zone/busybox' }));
  const stored = (p: Blueprint['pipes']): StoredBlueprint => ({
    owner: OWNER, name: 'video', version: 1, deleted: false, acceptedAt: '2026-06-01T00:00:00Z',
    document: { name: 'video', version: 1, owner: OWNER, node: 'n1', workloads, ...(p ? { pipes: p } : {}) },
  });
  const [plain, piped] = [desiredWorkloads('n1', [stored(undefined)]), desiredWorkloads('n1', [stored(pipes)])];
  const byName = (specs: typeof plain, name: string) => specs.find((s) => s.workload === name)!;
  t.equal(byName(piped, 'camera').definition.stdout, 'pipe');
  t.equal(byName(piped, 'detector').definition.stdin, 'pipe');
  t.not(byName(piped, 'camera').specHash, byName(plain, 'camera').specHash, 'the producer is replaced when a pipe is added');
  t.not(byName(piped, 'detector').specHash, byName(plain, 'detector').specHash, 'the consumer too');
  t.equal(byName(piped, 'logger').specHash, byName(plain, 'logger').specHash, 'a workload no pipe joins keeps its hash');
  t.equal(byName(plain, 'logger').specHash, specHash(normalizeWorkload(workloads[2]!)), 'and it is the hash without pipe fields at all');
  t.notOk('stdin' in byName(plain, 'logger').definition, 'no stdin field when not piped');
});

t.test('pipe messages: headers in, data or marker out', async (t) => {
  const of = (h: Record<string, string>) => pipeMessageOf((name) => h[name] ?? '');
  t.same(of({ 'Zone-Pipe-Incarnation': 'T1', 'Zone-Pipe-Offset': '65536' }), { kind: 'data', incarnation: 'T1', offset: 65536 });
  t.same(of({ 'Zone-Pipe-Incarnation': 'T1', 'Zone-Pipe-Offset': '7', 'Zone-Pipe-Eof': '0' }), { kind: 'eof', incarnation: 'T1', offset: 7, exitCode: 0 });
  t.same(of({ 'Zone-Pipe-Incarnation': 'T1', 'Zone-Pipe-Offset': '7', 'Zone-Pipe-Eof': 'unknown' }), { kind: 'eof', incarnation: 'T1', offset: 7, exitCode: null });
  t.equal(of({ 'Zone-Pipe-Offset': '7' }), null, 'no incarnation');
  t.equal(of({ 'Zone-Pipe-Incarnation': 'T1', 'Zone-Pipe-Offset': '-1' }), null, 'a negative offset');
  t.equal(of({ 'Zone-Pipe-Incarnation': 'T1' }), null, 'no offset');
});

t.test('the producer takes up an incarnation where the stream stopped', async (t) => {
  const data = (incarnation: string, offset: number): PipeMessage => ({ kind: 'data', incarnation, offset });
  const eof = (incarnation: string, offset: number): PipeMessage => ({ kind: 'eof', incarnation, offset, exitCode: 0 });
  const cases: [string, Parameters<typeof resumeFrom>[0], Resume][] = [
    ['an empty stream: from the start', null, { kind: 'from', offset: 0, closeOut: null }],
    ['part of it there: after the last byte', { message: data('T2', 65536), bytes: 100 }, { kind: 'from', offset: 65636, closeOut: null }],
    ['its marker there: done', { message: eof('T2', 9), bytes: 0 }, { kind: 'done' }],
    ['an earlier one ended: from the start', { message: eof('T1', 9), bytes: 0 }, { kind: 'from', offset: 0, closeOut: null }],
    ['an earlier one without marker: close it first', { message: data('T1', 10), bytes: 5 }, { kind: 'from', offset: 0, closeOut: { incarnation: 'T1', offset: 15 } }],
  ];
  for (const [what, tail, expected] of cases) t.same(resumeFrom(tail, 'T2'), expected, what);
});

t.test('the feeder writes every byte of one input once, in order, or stops', async (t) => {
  const fresh: FeedState = { incarnation: null, offset: 0 };
  const at = (offset: number) => ({ incarnation: 'T1', offset });
  const data = (offset: number, incarnation = 'T1'): PipeMessage => ({ kind: 'data', incarnation, offset });
  const eof = (offset: number, incarnation = 'T1'): PipeMessage => ({ kind: 'eof', incarnation, offset, exitCode: 0 });
  const cases: [string, FeedState, PipeMessage | null, number, FeedStep | RegExp][] = [
    ['the first bytes of an input', fresh, data(0), 10, { kind: 'write', from: 0, next: at(10) }],
    ['the next bytes', at(10), data(10), 5, { kind: 'write', from: 0, next: at(15) }],
    ['a repeated message', at(15), data(10), 5, { kind: 'skip' }],
    ['a message overlapping what was written: only the new part', at(12), data(10), 5, { kind: 'write', from: 2, next: at(15) }],
    ['the marker after every byte', at(15), eof(15), 0, { kind: 'eof' }],
    ['an empty input', fresh, eof(0), 0, { kind: 'eof' }],
    ['an input that does not start at 0', fresh, data(10), 5, /bytes 0\.\.10 of producer incarnation T1 are missing/],
    ['a gap', at(10), data(20), 5, /bytes 10\.\.20 of producer incarnation T1 are missing/],
    ['a marker with another count', at(10), eof(15), 0, /marker of producer incarnation T1 says 15 bytes; 10 were given/],
    ['another incarnation before the marker', at(10), data(0, 'T2'), 5, /T1 ended without its marker after 10 bytes \(next: T2\)/],
    ['no pipe headers', at(10), null, 5, /without the pipe headers/],
    ['a trimmed input taken up at its kept message: skipped, then the next bytes', at(15), data(10), 5, { kind: 'skip' }],
  ];
  for (const [what, state, message, bytes, expected] of cases) {
    const step = feedStep(state, message, bytes);
    if (expected instanceof RegExp) {
      t.equal(step.kind, 'error', what);
      if (step.kind === 'error') t.match(step.reason, expected, what);
    } else {
      t.same(step, expected, what);
    }
  }
});

t.test('a stored position is checked before it is used', async (t) => {
  const pipe = pipeIdentity(OWNER, 'n1/a/x.stdout', 'n1/a/y.stdin');
  t.same(parsePosition('{"committed":7,"feeding":"T","deliveredThrough":null}', pipe), { committed: 7, feeding: 'T', deliveredThrough: null, trimmed: null }, 'one written before inputs were trimmed');
  t.same(parsePosition('{"committed":7,"feeding":"T","deliveredThrough":null,"trimmed":{"seq":90,"incarnation":"A1","offset":4096}}', pipe),
    { committed: 7, feeding: 'T', deliveredThrough: null, trimmed: { seq: 90, incarnation: 'A1', offset: 4096 } });
  t.same(parsePosition(JSON.stringify(START_POSITION), pipe), START_POSITION);
  t.throws(() => parsePosition('{"committed":-1,"feeding":null,"deliveredThrough":null}', pipe), /position of pipe n1\/a\/x.stdout -> n1\/a\/y.stdin .* is not \{committed, feeding, deliveredThrough, trimmed\}/);
  t.throws(() => parsePosition('{"committed":1,"feeding":3,"deliveredThrough":null}', pipe), /is not \{committed/);
  for (const trimmed of [{ seq: 0, incarnation: 'A1', offset: 1 }, { seq: 5, incarnation: '', offset: 1 }, { seq: 5, incarnation: 'A1', offset: -1 }, { seq: 5, incarnation: 'A1' }, 'A1:5']) {
    t.throws(() => parsePosition(JSON.stringify({ committed: 1, feeding: 'T', deliveredThrough: null, trimmed }), pipe), /is not \{committed/, `trimmed ${JSON.stringify(trimmed)}`);
  }
});
