// Docker's multiplexed stream -> one stream's bytes, however the frames are cut.
import t from 'tap';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { FrameDemuxer, STDERR_FRAME, STDOUT_FRAME } from '../../../drivers/docker/frames.ts';

function frame(type: number, payload: string): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(Buffer.byteLength(payload), 4);
  return Buffer.concat([header, Buffer.from(payload)]);
}

/** `data` cut into pieces of `size` bytes, through a demuxer. */
async function demuxed(data: Buffer, size: number, type = STDOUT_FRAME): Promise<string> {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return (await buffer(Readable.from(pieces).pipe(new FrameDemuxer(type)))).toString();
}

t.test('keeps the payload of one stream, whatever the cuts', async (t) => {
  const data = Buffer.concat([frame(STDOUT_FRAME, 'hello '), frame(STDERR_FRAME, 'noise'), frame(STDOUT_FRAME, ''), frame(STDOUT_FRAME, 'world\n')]);
  for (const size of [1, 3, 7, 8, 9, 64, data.length]) t.equal(await demuxed(data, size), 'hello world\n', `cut every ${size} bytes`);
  t.equal(await demuxed(data, 5, STDERR_FRAME), 'noise', 'or the other stream');
});

t.test('a stream cut inside a frame, or not multiplexed, is an error', async (t) => {
  await t.rejects(demuxed(frame(STDOUT_FRAME, 'hello').subarray(0, 10), 4), /ended inside a frame/);
  await t.rejects(demuxed(frame(STDOUT_FRAME, 'hello').subarray(0, 5), 4), /ended inside a frame/);
  await t.rejects(demuxed(Buffer.from('plain text from a TTY'), 64), /not a multiplexed Docker stream: frame type 112/);
});
