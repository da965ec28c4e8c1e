// GET /v1/events: server-sent events, each with its seq as the SSE id. The stream is
// always read from the stored log (a live event only says "there is more"), so a slow
// client is never dropped or buffered without bound: it reads on from where it was,
// and a client that reconnects with Last-Event-ID (or ?after=) misses nothing that
// the log still holds.
import { once } from 'node:events';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Appliance, ZoneEvent } from '../../appliance/types.ts';
import { Name } from '../../blueprints/schema.ts';
import { errorResponses } from '../errors.ts';
import type { StreamSlots } from '../stream-slots.ts';

const BATCH = 500;
const HEARTBEAT_MS = 15_000;

const EventsQuery = Type.Object({
  blueprint: Type.Optional(Name),
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'send events with a greater seq (Last-Event-ID wins when both are given)' })),
  follow: Type.Boolean({ default: true, description: 'keep the stream open for new events; false ends it after the stored ones' }),
});

const frame = (e: ZoneEvent) => `id: ${e.seq}\nevent: transition\ndata: ${JSON.stringify(e)}\n\n`;

/** `ownerOf`: the owner a request speaks for, when the stream is narrowed to one owner's events (the console's). */
export function eventRoutes(appliance: Appliance, slots: StreamSlots, ownerOf?: (request: FastifyRequest) => string) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: { blueprint?: string; after?: number; follow: boolean } }>('/', {
      schema: {
        tags: ['events'],
        summary: 'state transitions as server-sent events (id = seq; data = a ZoneEvent as JSON)',
        querystring: EventsQuery,
        headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })) }),
        response: { 200: { description: 'text/event-stream of ZoneEvent', content: { 'text/event-stream': { schema: Type.Ref('ZoneEvent') } } }, ...errorResponses(400, 401, 429) },
      },
    }, async (request, reply) => {
      const { blueprint, follow } = request.query;
      const owner = ownerOf?.(request);
      const lastId = request.headers['last-event-id'];
      let cursor = typeof lastId === 'string' ? Number(lastId) : (request.query.after ?? 0);

      let closed = false;
      let wake: (() => void) | null = null;
      const release = slots.take(request.ip, () => {
        closed = true;
        wake?.();
      });
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      out.write(': zone events\n\n');

      let more = true; // the stored log first
      const signal = () => {
        more = true;
        wake?.();
      };
      const unsubscribe = appliance.onEvent((e) => {
        if ((!blueprint || e.blueprint === blueprint) && (!owner || e.owner === owner)) signal();
      });
      const heartbeat = setInterval(() => out.write(': keepalive\n\n'), HEARTBEAT_MS);
      out.once('close', () => {
        closed = true;
        wake?.();
      });
      try {
        while (!closed) {
          if (!more) {
            if (!follow) break;
            await new Promise<void>((resolve) => { wake = resolve; });
            wake = null;
            continue;
          }
          more = false;
          const batch = appliance.events({ after: cursor, limit: BATCH, ...(blueprint ? { blueprint } : {}) });
          for (const e of batch) {
            cursor = e.seq;
            if (owner && e.owner !== owner) continue;
            if (!out.write(frame(e)) && !closed) await Promise.race([once(out, 'drain'), once(out, 'close')]);
            if (closed) break;
          }
          if (batch.length === BATCH) more = true;
        }
      } catch (err) {
        request.log.warn({ err }, 'event stream ended');
      } finally {
        release();
        unsubscribe();
        clearInterval(heartbeat);
        out.end();
      }
    });
  };
}
