// The ceiling of a pipe's path without Zone (bench/pipes.ts, path (e)): a bare NATS
// client publishes BYTES in messages of a pipe's size into a stream configured like a
// pipe's, a window of them unacknowledged at once, through one node's nats-server; a bare
// client on the other node reads them with a pull consumer. No Docker, no appliance.
// Before the bytes, PINGS stamped messages 0.5 s apart, each its own publish (a pipe's
// lone line): their latency from the publish to the consumer is the stream's own part of
// a pipe's line latency.
// Run in a node's namespace, signed in with that node's client key:
//   node --import tsx bench/nats-route.ts sink|source DATA_DIR STREAM BYTES
// Prints `ready` (sink, once its consumer waits), `start STAMP` (source), `ping MICROSECONDS`
// per stamped message and `end BYTES STAMP` (sink), stamps being the wall clock in
// seconds.microseconds like the shell scripts' S.
import { join } from 'node:path';
import { DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos, nkeyAuthenticator } from '@nats-io/transport-node';
import { loadOrCreateClientKey } from '../appliance/pseudokernel/nats/credentials.ts';
import { PIPE_CHUNK_BYTES } from '../appliance/pseudokernel/pipes/ends.ts';
import { WINDOW_MESSAGES } from '../appliance/pseudokernel/pipes/window.ts';

const PINGS = 5;

const [role, dataDir, stream, bytesText] = process.argv.slice(2);
const bytes = Number(bytesText);
if ((role !== 'sink' && role !== 'source') || !dataDir || !stream || !Number.isSafeInteger(bytes)) {
  throw new Error('usage: bench/nats-route.ts sink|source DATA_DIR STREAM BYTES');
}
const stamp = () => ((performance.timeOrigin + performance.now()) / 1000).toFixed(6);

const key = loadOrCreateClientKey(join(dataDir, 'nats', 'client.nk'));
const nc = await connect({ servers: '127.0.0.1:4222', authenticator: nkeyAuthenticator(key.seed), ignoreClusterUpdates: true });
const js = jetstream(nc);
const subject = `bench.${stream}`;
try {
  if (role === 'sink') {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream, subjects: [subject], storage: StorageType.File, retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New, max_bytes: 1024 ** 3, duplicate_window: nanos(120_000), num_replicas: 1,
    });
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume({ max_bytes: 8 * 1024 * 1024 });
    console.log('ready');
    let got = 0;
    let pings = 0;
    for await (const m of messages) {
      if (pings < PINGS) {
        console.log(`ping ${Math.round((Number(stamp()) - Number(m.string())) * 1e6)}`);
        pings++;
        continue;
      }
      got += m.data.length;
      if (got >= bytes) break;
    }
    console.log(`end ${got} ${stamp()}`);
    await jsm.streams.delete(stream);
  } else {
    for (let i = 0; i < PINGS; i++) {
      await js.publish(subject, stamp(), { msgID: `ping${i}` });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const data = new Uint8Array(PIPE_CHUNK_BYTES);
    const inFlight: Promise<unknown>[] = [];
    console.log(`start ${stamp()}`);
    for (let offset = 0; offset < bytes; offset += PIPE_CHUNK_BYTES) {
      if (inFlight.length >= WINDOW_MESSAGES) await inFlight.shift();
      inFlight.push(js.publish(subject, data.subarray(0, Math.min(PIPE_CHUNK_BYTES, bytes - offset)), { msgID: String(offset) }));
    }
    await Promise.all(inFlight);
  }
} finally {
  await nc.close();
}
