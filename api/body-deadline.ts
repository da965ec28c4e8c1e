// How long a client may take to send a request's body. Node's own `requestTimeout` cuts
// any request not received whole within one bound: right against a client that trickles
// a blueprint, wrong for a 500 MiB release or image part on a slow link, which it cut at
// 30 s however steadily the bytes came. Here every request keeps that bound until it is
// authorised; then a route marked `config: { upload: true }` has instead to keep its
// bytes coming: no gap longer than the bound, and no longer in all than the bound plus a
// second per `minBytesPerSecond` bytes received (any self-made key may upload to /v1/grid:
// a byte every few seconds must not hold a connection for hours). Its size has its own cap. Headers keep Node's
// check (`serverTimeouts`).
import type { IncomingMessage, ServerOptions } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The body is a stream the route reads at its pace: once authorised, only a stall of the bound cuts it. */
    upload?: boolean;
  }
}

/** What Node answers to a request it cuts; the connection goes with it. */
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** Options for every node:http server the API listens with: headers within `ms`, bodies left to the hooks. */
export function serverTimeouts(ms: number): Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'> {
  // Node looks for late headers every 30 s by default: a bound of 30 s then meant up to 60.
  return { headersTimeout: ms, requestTimeout: 0, connectionsCheckingInterval: Math.min(ms, 5_000) };
}

/** The slowest an authorised upload may arrive on average: a 37 MiB release then takes 40 min at most. */
export const UPLOAD_MIN_BYTES_PER_SECOND = 16 * 1024;

export function registerBodyDeadlines(app: FastifyInstance, ms: number, minBytesPerSecond = UPLOAD_MIN_BYTES_PER_SECOND): void {
  const armed = new WeakMap<IncomingMessage, () => void>();
  app.addHook('onRequest', async (request, reply) => {
    const req = request.raw;
    // No body, or all of it in already; or no connection (an injected request) to bound.
    if (req.complete || !(req.socket instanceof Socket)) return;
    const timer = setTimeout(() => {
      if (!req.complete) cut(req, reply.raw.headersSent);
    }, ms).unref();
    const disarm = () => clearTimeout(timer);
    armed.set(req, disarm);
    // The request's own end (all read, or aborted), not the answer's: a body still coming after an early refusal stays bounded.
    req.once('close', disarm);
  });
  // After the route's own onRequest hooks: an upload's caller is authorised by now.
  app.addHook('preHandler', async (request, reply) => {
    const req = request.raw;
    if (!request.routeOptions.config.upload || req.complete || !(req.socket instanceof Socket)) return;
    armed.get(req)?.();
    const socket = req.socket;
    const began = Date.now();
    const first = socket.bytesRead;
    let seen = first;
    let since = began;
    // bytesRead counts what the HTTP parser consumed too, which a 'data' listener would not see.
    const watch = setInterval(() => {
      if (req.complete) return clearInterval(watch);
      const now = Date.now();
      if (socket.bytesRead !== seen) {
        seen = socket.bytesRead;
        since = now;
      }
      const stalled = now - since >= ms;
      // As Apache's MinRate: each byte earns time, on top of the bound.
      const trickling = now - began >= ms + (seen - first) / minBytesPerSecond * 1000;
      if (stalled || trickling) {
        clearInterval(watch);
        cut(req, reply.raw.headersSent);
      }
    }, Math.min(ms / 4, 1000)).unref();
    req.once('close', () => clearInterval(watch));
  });
}

/** As Node cuts a request: its 408 when nothing was answered yet, then the connection closed. */
function cut(req: IncomingMessage, answered: boolean): void {
  const socket = req.socket;
  if (!answered && socket.writable) socket.write(REQUEST_TIMEOUT);
  socket.destroy();
}
