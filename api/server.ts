// The node API: one fastify server, one plugin per area under its prefix. Not
// listening: api/main.ts calls listen() on each configured address.
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { FastifyBaseLogger } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { DEFAULT_LIMITS, type StreamLimit } from '../appliance/config.ts';
import type { Appliance } from '../appliance/types.ts';
import { LIMITS } from '../blueprints/json-value.ts';
import { consoleRoutes, isConsoleRoute } from './console.ts';
import { registerBodyDeadlines, serverTimeouts } from './body-deadline.ts';
import { registerErrorHandling } from './errors.ts';
import { createMetrics, metricsRoutes } from './metrics.ts';
import type { ParsePoolOptions } from './parsing/pool.ts';
import type { ReadTokenOptions } from '../lib/tokens.ts';
import { blueprintRoutes } from './routes/blueprints.ts';
import { eventRoutes } from './routes/events.ts';
import { gridRoutes } from './routes/grid.ts';
import { imageRoutes } from './routes/images.ts';
import { nodeRoutes } from './routes/node.ts';
import { volumeRoutes } from './routes/volumes.ts';
import { ownerWorkloadRoutes } from './routes/owner-workloads.ts';
import { SHARED_SCHEMAS } from './schemas.ts';
import { StreamSlots } from './stream-slots.ts';

export interface ServerOptions {
  /** A pino logger (the appliance's), true for fastify's own, false/absent for none. */
  logger?: FastifyBaseLogger | boolean;
  /** Largest request body in bytes (default: the largest blueprint text, 1 MiB). */
  bodyLimit?: number;
  /** Requests per client address and window (default 600 per minute); false turns it off. */
  rateLimit?: { max: number; timeWindowMs: number } | false;
  /** Time to receive a request's headers, and its body (an authorised upload: the longest gap in it); default 30 s. */
  requestTimeoutMs?: number;
  /** The slowest mean rate an authorised upload may keep once past requestTimeoutMs (default UPLOAD_MIN_BYTES_PER_SECOND). */
  uploadMinBytesPerSecond?: number;
  /** When set, read routes need a token signed by one of these keys (see lib/tokens.ts). */
  readToken?: ReadTokenOptions;
  /** Open event streams and log follows per client address and in all (default: the config's defaults). */
  streams?: { events: StreamLimit; logFollows: StreamLimit };
  /** Largest file one PUT /v1/grid/fs takes (default: the config's default). */
  gridFileBytes?: number;
  /** The worker threads that parse and verify submitted blueprints (see api/parsing/pool.ts). */
  parsing?: ParsePoolOptions;
}

export const REQUEST_TIMEOUT_MS = 30_000;
/** Routes anyone may read, even with read protection on (and the console's files: isConsoleRoute). */
const OPEN_ROUTES = new Set(['/healthz', '/docs', '/docs/json']);
/** Routes that take an owner token instead (api/routes/grid.ts): the header holds one token. */
const OWNER_ROUTES = '/v1/grid/';

export async function buildServer(appliance: Appliance, options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(typeof options.logger === 'object' ? { loggerInstance: options.logger } : { logger: options.logger ?? false }),
    bodyLimit: options.bodyLimit ?? LIMITS.maxTextBytes,
    http: serverTimeouts(options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS),
    // Event and log streams stay open: close them with the server.
    forceCloseConnections: true,
    // Never log request bodies or headers (a body may carry sealed values, a header a token).
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance; // the logger option changes the generic type; callers need only the common surface

  registerErrorHandling(app);
  registerBodyDeadlines(app, options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, options.uploadMinBytesPerSecond);
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Zone node API', version: 'v1', description: 'The only way in to a Zone node. Changes come only as signed blueprints.' },
      tags: [{ name: 'node' }, { name: 'blueprints' }, { name: 'events' }, { name: 'grid' }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  if (options.rateLimit !== false) {
    const limit = options.rateLimit ?? { max: 600, timeWindowMs: 60_000 };
    await app.register(rateLimit, {
      max: limit.max, timeWindow: limit.timeWindowMs,
      errorResponseBuilder: (_request, context) => Object.assign(new Error(`rate limit: ${context.max} requests per ${context.after}; retry later`), { statusCode: 429 }),
    });
  }
  if (options.readToken) {
    const tokens = options.readToken;
    app.addHook('onRequest', async (request) => {
      const route = request.routeOptions.url ?? '';
      if (request.method === 'PUT' || OPEN_ROUTES.has(route) || route.startsWith(OWNER_ROUTES) || isConsoleRoute(route)) return;
      appliance.tokens.checkRead(request.headers.authorization, { method: request.method, path: request.url }, tokens);
    });
  }

  const metrics = createMetrics(appliance);
  app.addHook('onResponse', async (request, reply) => {
    // Unmatched URLs share one label so that a scanner cannot grow the label set.
    metrics.observeRequest({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode }, reply.elapsedTime / 1000);
  });

  const eventStreams = new StreamSlots('event streams', options.streams?.events ?? DEFAULT_LIMITS.eventStreams, 'limits.eventStreams');
  const logFollows = new StreamSlots('log follows', options.streams?.logFollows ?? DEFAULT_LIMITS.logFollows, 'limits.logFollows');
  // Before the listener closes: an open stream, on any address, would keep the close waiting.
  app.addHook('preClose', async () => {
    eventStreams.endAll();
    logFollows.endAll();
  });

  await app.register(nodeRoutes(appliance), { prefix: '/v1/node' });
  await app.register(blueprintRoutes(appliance, metrics, logFollows, options.parsing), { prefix: '/v1/blueprints' });
  await app.register(volumeRoutes(appliance), { prefix: '/v1/volumes' });
  await app.register(eventRoutes(appliance, eventStreams), { prefix: '/v1/events' });
  await app.register(gridRoutes(appliance, options.gridFileBytes ?? DEFAULT_LIMITS.gridFileBytes), { prefix: '/v1/grid' });
  await app.register(imageRoutes(appliance), { prefix: '/v1/grid/images' });
  await app.register(ownerWorkloadRoutes(appliance, { events: eventStreams, logFollows }), { prefix: '/v1/grid' });
  await app.register(consoleRoutes());
  await app.register(metricsRoutes(metrics));
  // The node id is open: clients make their tokens for it (their audience) before any other call.
  app.get('/healthz', {
    schema: { tags: ['node'], summary: 'the API answers; the node id (the audience of its tokens)', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' }, node: { type: 'string' } } } } },
  }, async () => ({ ok: true, node: appliance.tokens.node }));
  const openapi = { schema: { hide: true } };
  app.get('/docs', openapi, async () => app.swagger());
  app.get('/docs/json', openapi, async () => app.swagger());
  return app;
}
