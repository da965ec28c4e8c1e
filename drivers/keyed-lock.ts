// One operation at a time per key (a domain, an owner's network), in this process:
// the next caller for a key waits for the previous one, whether it failed or not.
// Shared callers of a key run beside each other (containers made in one owner's
// network), and an exclusive caller waits for them all (removing that network when
// no container is left), as later shared callers wait for it.
interface KeyState {
  /** The latest exclusive call: every later call waits for it. */
  exclusive: Promise<unknown>;
  /** Shared calls since the latest exclusive one: the next exclusive call waits for them. */
  shared: Set<Promise<unknown>>;
  /** Calls queued or running: the key is forgotten when none is left. */
  pending: number;
}

export class KeyedLock {
  private readonly keys = new Map<string, KeyState>();

  /** Runs `fn` alone for `key`: after every earlier call for it, before every later one. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const state = this.enter(key);
    const next = Promise.allSettled([state.exclusive, ...state.shared]).then(fn);
    state.exclusive = next;
    state.shared = new Set();
    try {
      return await next;
    } finally {
      this.leave(key, state);
    }
  }

  /** Runs `fn` for `key` beside other shared calls, after the earlier exclusive one and before any later one. */
  async runShared<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const state = this.enter(key);
    const next = state.exclusive.then(fn, fn);
    state.shared.add(next);
    try {
      return await next;
    } finally {
      state.shared.delete(next);
      this.leave(key, state);
    }
  }

  private enter(key: string): KeyState {
    let state = this.keys.get(key);
    if (!state) {
      state = { exclusive: Promise.resolve(), shared: new Set(), pending: 0 };
      this.keys.set(key, state);
    }
    state.pending++;
    return state;
  }

  private leave(key: string, state: KeyState): void {
    if (--state.pending === 0) this.keys.delete(key);
  }
}
