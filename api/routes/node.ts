// GET /v1/node: who this node is, its keys, drivers and capacity.
import type { FastifyInstance } from 'fastify';
import type { Appliance } from '../../appliance/types.ts';
import { errorResponses } from '../errors.ts';
import { Type } from '@sinclair/typebox';

export function nodeRoutes(appliance: Appliance) {
  return async (app: FastifyInstance) => {
    app.get('/', {
      schema: {
        tags: ['node'], summary: 'identity, public keys, drivers and capacity of this node',
        response: { 200: Type.Ref('NodeInfo'), ...errorResponses(401, 429) },
      },
    }, async () => appliance.nodeInfo());
  };
}
