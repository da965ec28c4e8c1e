// The nonces of the tokens a node accepted, each remembered until its token expires, so
// that a token is accepted once. Bounded: past `capacity` unexpired entries a new nonce
// is refused (TOO_MANY) rather than remembered, since forgetting one early would let its
// token be replayed. Expiries are whole seconds bucketed by second, so forgetting costs
// one visit per entry and the buckets are at most as many as the seconds a token lives.
import { ZoneError } from './errors.ts';

export class ReplayMemory {
  private readonly expiries = new Map<string, number>();
  private readonly buckets = new Map<number, string[]>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.expiries.size;
  }

  /**
   * Remembers `nonce` until `exp` (seconds); false when it is remembered already (a replay).
   * Throws ZoneError TOO_MANY when `capacity` unexpired nonces are remembered.
   */
  remember(nonce: string, exp: number, nowSeconds: number): boolean {
    this.forgetExpired(nowSeconds);
    if (this.expiries.has(nonce)) return false;
    if (this.expiries.size >= this.capacity) {
      throw new ZoneError('TOO_MANY', `this node remembers ${this.capacity} unexpired tokens already; retry in a few seconds`, '/headers/authorization');
    }
    this.expiries.set(nonce, exp);
    const bucket = this.buckets.get(exp);
    if (bucket) bucket.push(nonce);
    else this.buckets.set(exp, [nonce]);
    return true;
  }

  private forgetExpired(nowSeconds: number): void {
    for (const [exp, nonces] of this.buckets) {
      if (exp > nowSeconds) continue;
      for (const nonce of nonces) this.expiries.delete(nonce);
      this.buckets.delete(exp);
    }
  }
}
