// /v1/grid on this node, for the web console: the token's owner's blueprints here with
// their workloads' states, their events as they come (SSE), a workload's logs, the CPU and
// memory of each over the last hour, and a terminal into one (api/routes/terminal.ts).
// Like the rest of /v1/grid, every call names its owner by an owner token: a key reaches
// only its own blueprints, events, logs and terminals.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Appliance } from '../../appliance/types.ts';
import { errorResponses } from '../errors.ts';
import { BlueprintListSchema, WorkloadParams } from '../schemas.ts';
import type { StreamSlots } from '../stream-slots.ts';
import { sendLogs } from './blueprints.ts';
import { eventRoutes } from './events.ts';
import { terminalRoutes, TERMINAL_PREFIX } from './terminal.ts';

const UsageList = Type.Object({
  workloads: Type.Array(Type.Object({
    blueprint: Type.String(), workload: Type.String(), kind: Type.String(),
    samples: Type.Array(Type.Object({ at: Type.String({ format: 'date-time' }), cpu: Type.Number({ description: 'cores' }), memoryBytes: Type.Integer() })),
  })),
});

export function ownerWorkloadRoutes(appliance: Appliance, slots: { events: StreamSlots; logFollows: StreamSlots }) {
  return async (app: FastifyInstance) => {
    const owners = new WeakMap<FastifyRequest, string>();
    app.addHook('onRequest', async (request) => {
      // A terminal's token comes in its first message: a browser cannot set a WebSocket's headers.
      if (request.routeOptions.url?.startsWith(`/v1/grid${TERMINAL_PREFIX}/`)) return;
      owners.set(request, appliance.tokens.checkOwner(request.headers.authorization, { method: request.method, path: request.url }));
    });
    const owner = (request: FastifyRequest) => owners.get(request)!;

    app.get('/blueprints', {
      schema: {
        tags: ['grid'], summary: "the token's owner's blueprints on this node with the state of each workload",
        response: { 200: BlueprintListSchema, ...errorResponses(401, 429) },
      },
    }, async (request) => ({ blueprints: appliance.listBlueprints().filter((b) => b.owner === owner(request)) }));

    await app.register(eventRoutes(appliance, slots.events, owner), { prefix: '/events' });

    app.get<{ Params: { name: string; workload: string }; Querystring: { follow: boolean; tail?: number } }>('/logs/:name/:workload', {
      schema: {
        tags: ['grid'], summary: "the output of a workload of the token's owner on this node, streamed",
        params: WorkloadParams,
        querystring: Type.Object({
          follow: Type.Boolean({ default: false, description: 'keep streaming new output' }),
          tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'lines from the end' })),
        }),
        response: { 200: { description: 'the log text', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(400, 401, 404, 429, 503) },
      },
    }, async (request, reply) => sendLogs(appliance, slots.logFollows, request, reply, { ...request.params, ...request.query, owner: owner(request) }));

    app.get('/usage', {
      schema: {
        tags: ['grid'], summary: "CPU and memory of each workload of the token's owner on this node over the last hour",
        response: { 200: UsageList, ...errorResponses(401, 429) },
      },
    }, async (request) => ({ workloads: appliance.console?.usage(owner(request)) ?? [] }));

    await app.register(terminalRoutes(appliance, slots.logFollows));
  };
}
