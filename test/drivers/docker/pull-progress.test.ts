// A pull's progress lines from dockerd's: layers done of those known, bytes of the
// layers downloaded, at most one line per interval, none when nothing changed.
import t from 'tap';
import { PullProgress, type PullEvent } from '../../../drivers/docker/pull-progress.ts';

const MIB = 1024 * 1024;

t.test('layers and bytes are counted from the statuses dockerd gives each layer', async (t) => {
  const p = new PullProgress('pulling r/app:1', 0);
  const steps: [PullEvent, string | null][] = [
    [{ status: 'Pulling from app', id: '1' }, null],
    [{ status: 'Pulling fs layer', id: 'a' }, 'pulling r/app:1: 0/1 layers, 0 B of 0 B'],
    [{ status: 'Already exists', id: 'b' }, 'pulling r/app:1: 1/2 layers, 0 B of 0 B'],
    [{ status: 'Downloading', id: 'a', progressDetail: { current: MIB, total: 4 * MIB } }, 'pulling r/app:1: 1/2 layers, 1.0 MiB of 4.0 MiB'],
    [{ status: 'Downloading', id: 'a', progressDetail: { current: MIB, total: 4 * MIB } }, null],
    [{ status: 'Download complete', id: 'a' }, 'pulling r/app:1: 1/2 layers, 4.0 MiB of 4.0 MiB'],
    [{ status: 'Extracting', id: 'a', progressDetail: { current: 10, total: 20 } }, null],
    [{ status: 'Pull complete', id: 'a' }, 'pulling r/app:1: 2/2 layers, 4.0 MiB of 4.0 MiB'],
    [{ status: 'Digest: sha256:abc' }, null],
  ];
  for (const [event, line] of steps) t.equal(p.update(event, 0), line, JSON.stringify(event));
  t.equal(p.summary(), '2/2 layers, 4.0 MiB of 4.0 MiB');
});

t.test('at most one line per interval: what happens between waits for the next line', async (t) => {
  const p = new PullProgress('pulling x', 1000);
  t.ok(p.update({ status: 'Pulling fs layer', id: 'a' }, 0), 'the first at once');
  t.equal(p.update({ status: 'Downloading', id: 'a', progressDetail: { current: 1, total: 2048 } }, 500), null);
  t.equal(p.update({ status: 'Downloading', id: 'a', progressDetail: { current: 1024, total: 2048 } }, 999), null);
  t.equal(p.update({ status: 'Downloading', id: 'a', progressDetail: { current: 1536, total: 2048 } }, 1000), 'pulling x: 0/1 layers, 1.5 KiB of 2.0 KiB');
});

t.test('malformed lines count for nothing', async (t) => {
  const p = new PullProgress('pulling x', 0);
  for (const event of [{}, { status: 7, id: 'a' }, { status: 'Downloading', id: 3 }, { status: 'Downloading', id: 'a', progressDetail: { current: 'x', total: -1 } }, { status: 'Downloading', id: 'b', progressDetail: null }] as PullEvent[]) {
    p.update(event, 0);
  }
  t.equal(p.summary(), '0/2 layers, 0 B of 0 B');
});
