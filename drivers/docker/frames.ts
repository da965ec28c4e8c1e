// Docker's multiplexed attach and logs streams (no TTY): frames of an 8-byte header
// (stream type, three zero bytes, big-endian payload length) and the payload. This
// keeps one stream's bytes, as a Transform so that backpressure reaches the socket
// (dockerode's demuxStream writes on without waiting for the reader).
import { Transform, type TransformCallback, type TransformOptions } from 'node:stream';

const HEADER_BYTES = 8;
export const STDOUT_FRAME = 1;
export const STDERR_FRAME = 2;

export class FrameDemuxer extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  /** Payload bytes still to come of the current frame. */
  private remaining = 0;
  private keep = false;

  constructor(private readonly frameType: number = STDOUT_FRAME, options?: Pick<TransformOptions, 'readableHighWaterMark'>) {
    super(options);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.remaining === 0) {
        if (data.length < HEADER_BYTES) {
          this.pending = data;
          break;
        }
        const type = data[0] ?? -1;
        if (type > STDERR_FRAME) {
          done(new Error(`not a multiplexed Docker stream: frame type ${type} (is the container's TTY on?)`));
          return;
        }
        this.keep = type === this.frameType;
        this.remaining = data.readUInt32BE(4);
        data = data.subarray(HEADER_BYTES);
        continue;
      }
      const n = Math.min(this.remaining, data.length);
      if (this.keep) this.push(data.subarray(0, n));
      this.remaining -= n;
      data = data.subarray(n);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    const cut = this.pending.length > 0 || this.remaining > 0;
    done(cut ? new Error('the Docker stream ended inside a frame: bytes are missing') : undefined);
  }
}
