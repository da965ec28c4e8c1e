// Long-lived responses (event streams, log follows) hold a socket, a timer and, for logs,
// an engine connection each for as long as the client wants: they are counted per client
// address and in all, and one past either bound is refused with 429 naming the bound.
import { ZoneError } from '../lib/errors.ts';
import type { StreamLimit } from '../appliance/config.ts';

export class StreamSlots {
  private readonly byClient = new Map<string, number>();
  private total = 0;
  /** How to end each open stream, for the server's close. */
  private readonly enders = new Set<() => void>();

  /** `what` names the streams in refusals ("event streams"); `field` is the config field of the bound. */
  constructor(private readonly what: string, private readonly limit: StreamLimit, private readonly field: string) {}

  /**
   * Takes a slot for one stream of `client`, or throws TOO_MANY; `end` ends the stream when
   * the server closes. The returned release is idempotent.
   */
  take(client: string, end: () => void): () => void {
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.limit.perClient) {
      throw this.refusal(`${mine} ${this.what} are open from ${client}, the most one client may hold (${this.field}.perClient = ${this.limit.perClient})`, this.limit.perClient);
    }
    if (this.total >= this.limit.total) {
      throw this.refusal(`${this.total} ${this.what} are open, the most this node serves (${this.field}.total = ${this.limit.total})`, this.limit.total);
    }
    this.byClient.set(client, mine + 1);
    this.total++;
    this.enders.add(end);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.enders.delete(end);
      this.total--;
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left === 0) this.byClient.delete(client);
      else this.byClient.set(client, left);
    };
  }

  /** Ends every open stream (the server is closing: they would hold it open for ever). */
  endAll(): void {
    for (const end of [...this.enders]) end();
  }

  private refusal(why: string, limit: number): ZoneError {
    return new ZoneError('TOO_MANY', `too many ${this.what}: ${why}; close one or retry later`, undefined, { limit });
  }
}
