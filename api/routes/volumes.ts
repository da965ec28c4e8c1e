// GET /v1/volumes: the volumes on this node (of one owner with ?owner=), their size and
// use, the workloads that mount them, and when a released one is deleted.
import type { FastifyInstance } from 'fastify';
import type { Appliance } from '../../appliance/types.ts';
import { errorResponses } from '../errors.ts';
import { OwnerQuery, VolumeListSchema } from '../schemas.ts';

export function volumeRoutes(appliance: Appliance) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: { owner?: string } }>('/', {
      schema: {
        tags: ['volumes'], summary: 'the volumes on this node: size, used, attached to, state, pending deletion',
        querystring: OwnerQuery,
        response: { 200: VolumeListSchema, ...errorResponses(400, 401, 429) },
      },
    }, async (request) => ({ volumes: await appliance.listVolumes(request.query.owner) }));
  };
}
