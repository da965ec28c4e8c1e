// StdoutChunks, what the producer reads A's stdout through: chunks kept as they came,
// joined once into a message, the stream held back when enough waits.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { StdoutChunks } from '../../../../appliance/pseudokernel/pipes/gather.ts';

t.test('a chunk that fits goes as it is; chunks are joined into messages of at most the size asked, in order', async (t) => {
  const stream = new PassThrough();
  const chunks = new StdoutChunks(stream, 1024);
  const one = Buffer.from('line\n');
  stream.write(one);
  t.equal(await chunks.next(), true);
  t.equal(chunks.take(100), one, 'the same buffer, not a copy');
  stream.write(Buffer.from('abc'));
  stream.write(Buffer.from('defg'));
  stream.write(Buffer.from('hi'));
  await chunks.next(9);
  t.equal(chunks.available, 9);
  t.equal(chunks.take(5).toString(), 'abcde');
  t.equal(chunks.take(5).toString(), 'fghi');
  t.equal(chunks.available, 0);
  stream.end();
  t.equal(await chunks.next(), false, 'ended, nothing held');
});

t.test('waiting for more ends at the deadline with what is there', async (t) => {
  const stream = new PassThrough();
  const chunks = new StdoutChunks(stream, 1024);
  stream.write(Buffer.from('x'));
  await chunks.next();
  t.equal(await chunks.next(100, 5), true, 'not 100 bytes, but the deadline passed');
  t.equal(chunks.take(100).toString(), 'x');
  stream.destroy();
});

t.test('the stream is paused once the high-water mark is held, and resumes as it is taken', async (t) => {
  const stream = new PassThrough();
  const chunks = new StdoutChunks(stream, 8);
  stream.write(Buffer.alloc(10));
  await chunks.next();
  t.equal(stream.isPaused(), true, 'paused at 10 of 8');
  chunks.take(7);
  t.equal(stream.isPaused(), false, 'resumed below half');
  stream.destroy();
});

t.test('a stream that breaks gives what came before, then its failure', async (t) => {
  const stream = new PassThrough();
  const chunks = new StdoutChunks(stream, 1024);
  stream.write(Buffer.from('partial'));
  await chunks.next();
  stream.destroy(new Error('the Docker stream ended inside a frame'));
  t.equal(await chunks.next(), true);
  t.equal(chunks.take(100).toString(), 'partial');
  await t.rejects(chunks.next(), /inside a frame/);
});

t.test('a stream destroyed without an error (the producer was stopped) is not an end', async (t) => {
  const stream = new PassThrough();
  const chunks = new StdoutChunks(stream, 1024);
  const waiting = chunks.next();
  stream.destroy();
  await t.rejects(waiting, /closed before its end/);
});
