// nats-server before 2.12 puts an ephemeral consumer of a replicated stream on any one of the
// stream's servers (nats-io/nats-server#7165: 23 of 30 landed off the leader here), and a
// consumer delivers from its own server's copy of the stream. On a follower that lags, a
// listing misses what was just written; on one that caught up after a restart, what it got
// by catch-up never reaches its consumers, even once the leader reports it current (seen
// here: a read of a file written while it was down waited forever at the sequence before).
// A consumer is therefore kept only on the stream's leader; one placed elsewhere is made again.
import type { Consumer, JetStreamClient, OrderedConsumerOptions } from '@nats-io/jetstream';

/**
 * How many times a consumer is made before the last one is taken wherever it is. Of an R3
 * stream's placements a quarter to a third land on its leader (23 of 30 off it, above): 48
 * misses in a row are fewer than one in 250,000 (16 were one in 650 to one in 65, and a
 * consumer off the leader may wait forever). A miss costs a create and a delete.
 */
const PLACEMENT_ATTEMPTS = 48;

/** An ordered consumer of `stream`, on the stream's leader. */
export async function placedOrderedConsumer(js: JetStreamClient, stream: string, options: Partial<OrderedConsumerOptions>): Promise<Consumer> {
  const jsm = await js.jetstreamManager(false);
  for (let attempt = 1; ; attempt++) {
    const [consumer, info] = await Promise.all([js.consumers.get(stream, options), jsm.streams.info(stream)]);
    const server = (await consumer.info(true)).cluster?.leader;
    // Outside a cluster, or a stream of one replica, there is one copy.
    const leader = info.cluster?.leader;
    if (attempt === PLACEMENT_ATTEMPTS || !leader || !server || server === leader) return consumer;
    consumer.delete().catch(() => undefined);
  }
}
