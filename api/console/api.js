// Calls to this node as the signed-in owner: a fresh token per call (a node accepts a
// token once), scoped to the call's method and path exactly as the browser sends it.
import { ownerToken } from './tokens.js';

export class NodeClient {
  constructor(key, node) {
    this.key = key;
    this.node = node;
  }

  /** The URL path the server will see for `url` (percent-encoded as sent). */
  static pathOf(url) {
    return new URL(url, location.href).pathname;
  }

  /** `init.aud`: the node the call acts on, when another (a restart there). */
  async fetch(url, init = {}) {
    const { aud, ...rest } = init;
    const method = rest.method ?? 'GET';
    const headers = { authorization: ownerToken(this.key, aud ?? this.node, method, NodeClient.pathOf(url)), ...rest.headers };
    const res = await fetch(url, { ...rest, method, headers });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new Error(`${res.status}: ${body?.message ?? res.statusText}`);
    }
    return res;
  }

  async json(url, init) {
    return (await this.fetch(url, init)).json();
  }

  /**
   * Follows the owner's events (SSE over fetch, which can carry the token); reconnects
   * from the last seq it saw. Returns the stop function.
   */
  followEvents(onEvent, onState) {
    const controller = new AbortController();
    let last = 0;
    const run = async () => {
      while (!controller.signal.aborted) {
        try {
          const url = `/v1/grid/events?follow=true&after=${last}`;
          const res = await this.fetch(url, { signal: controller.signal });
          onState('live');
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffered = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffered += value;
            let cut;
            while ((cut = buffered.indexOf('\n\n')) >= 0) {
              const frame = buffered.slice(0, cut);
              buffered = buffered.slice(cut + 2);
              const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
              if (!data) continue;
              const event = JSON.parse(data);
              last = Math.max(last, event.seq);
              onEvent(event);
            }
          }
        } catch (err) {
          if (controller.signal.aborted) return;
          onState(`events lost (${err.message}); reconnecting`);
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    };
    void run();
    return () => controller.abort();
  }
}
