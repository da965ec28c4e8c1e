// /v1/blueprints: submit a signed blueprint (JSON or YAML), read what is desired and
// what runs, stream a workload's logs.
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ZoneError } from '../../lib/errors.ts';
import type { Appliance } from '../../appliance/types.ts';
import { Blueprint } from '../../blueprints/schema.ts';
import { errorReply, errorResponses } from '../errors.ts';
import type { ApiMetrics } from '../metrics.ts';
import { createParsePool, type ParsePoolOptions } from '../parsing/pool.ts';
import { BlueprintListSchema, BlueprintParams, OwnerQuery, WorkloadParams } from '../schemas.ts';
import type { StreamSlots } from '../stream-slots.ts';

export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** Checks one part of a request against a TypeBox schema; the error names the field. */
function partChecker(schema: TSchema, part: string) {
  return (data: unknown) => {
    const first = Value.Errors(schema, data).First();
    return first ? { error: new ZoneError('INVALID', `/${part}${first.path}: ${first.message.toLowerCase()}`, `/${part}${first.path}`) } : { value: data };
  };
}

/**
 * The submit route does not let fastify's Ajv touch the body: Ajv would coerce types
 * and strip unknown fields, changing a signed document. The appliance validates it
 * with validateBlueprint (the same Blueprint schema, plus the semantic checks), and
 * its errors name the field; the schema below still documents the body.
 */
const submitValidator = ({ httpPart }: { httpPart?: string }) =>
  httpPart === 'params' ? partChecker(BlueprintParams, 'params') : () => true;

const { $id: _blueprintId, ...BlueprintBody } = Blueprint;

export function blueprintRoutes(appliance: Appliance, metrics: ApiMetrics, logFollows: StreamSlots, parsing: ParsePoolOptions = {}) {
  return async (app: FastifyInstance) => {
    // Both formats are read as bytes and parsed and verified by the parse workers (strict
    // UTF-8, bounded size, nodes and depth, no YAML tags or alias bombs, signatures),
    // off the thread that serves the API, the engine and FUSE.
    const pool = createParsePool(appliance.verificationContext(), parsing);
    app.addHook('onClose', () => pool.close());
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req: FastifyRequest, body: Buffer) => pool.parse(body, 'json'));
    app.addContentTypeParser(YAML_TYPES, { parseAs: 'buffer' }, (_req: FastifyRequest, body: Buffer) => pool.parse(body, 'yaml'));

    // Every refused submission counts, including those the body parser or size limit refused.
    app.addHook('onError', async (request, _reply, err) => {
      if (request.method === 'PUT') metrics.refused(errorReply(err).body.error);
    });

    app.put<{ Params: { name: string } }>('/:name', {
      validatorCompiler: submitValidator,
      schema: {
        tags: ['blueprints'],
        summary: 'submit a signed blueprint (a tombstone, delete: true, removes it)',
        description: `Body: the blueprint as application/json or ${YAML_TYPES.join(', ')}. It is verified, admitted and stored durably before the 202.`,
        params: BlueprintParams,
        body: BlueprintBody,
        response: { 202: Type.Ref('SubmitResult'), ...errorResponses(400, 401, 403, 409, 413, 415, 422, 429, 503) },
      },
    }, async (request, reply) => {
      const body = request.body as { name?: unknown } | undefined;
      if (body === undefined) throw new ZoneError('INVALID', `a blueprint body is required (application/json or ${YAML_TYPES[0]})`, '/body');
      if (typeof body !== 'object' || body === null || body.name !== request.params.name) {
        throw new ZoneError('INVALID', `the blueprint's name must equal the name in the path (${request.params.name})`, '/name');
      }
      return reply.code(202).send(await appliance.submit(body));
    });

    app.get('/', {
      schema: { tags: ['blueprints'], summary: 'every blueprint on this node with the state of its workloads', response: { 200: BlueprintListSchema, ...errorResponses(401, 429) } },
    }, async () => ({ blueprints: appliance.listBlueprints() }));

    app.get<{ Params: { name: string }; Querystring: { owner?: string } }>('/:name', {
      schema: {
        tags: ['blueprints'], summary: 'the desired version of one blueprint and the state of each workload',
        params: BlueprintParams, querystring: OwnerQuery,
        response: { 200: Type.Ref('BlueprintStatus'), ...errorResponses(400, 401, 404, 429) },
      },
    }, async (request) => {
      const found = appliance.getBlueprint(request.params.name, request.query.owner);
      if (!found) throw new ZoneError('NOT_FOUND', `no blueprint ${request.params.name} on this node`, '/params/name');
      return found;
    });

    app.get<{ Params: { name: string; workload: string }; Querystring: { owner?: string; follow: boolean; tail?: number } }>('/:name/workloads/:workload/logs', {
      schema: {
        tags: ['blueprints'], summary: "a workload's output (stdout and stderr), streamed",
        params: WorkloadParams,
        querystring: Type.Object({
          owner: Type.Optional(OwnerQuery.properties.owner),
          follow: Type.Boolean({ default: false, description: 'keep streaming new output' }),
          tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'lines from the end' })),
        }),
        response: { 200: { description: 'the log text', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(400, 401, 404, 429, 503) },
      },
    }, async (request, reply) => {
      const { owner, ...rest } = request.query;
      return sendLogs(appliance, logFollows, request, reply, { ...request.params, ...rest, ...(owner ? { owner } : {}) });
    });
  };
}

/** Streams a workload's logs as the reply (`owner` narrows to that owner's blueprint); a follow takes one of `logFollows`. */
export async function sendLogs(
  appliance: Appliance, logFollows: StreamSlots, request: FastifyRequest, reply: FastifyReply,
  what: { name: string; workload: string; owner?: string; follow: boolean; tail?: number },
): Promise<FastifyReply> {
  const { name, workload, owner, follow, tail } = what;
  // A follow holds an engine connection until the client goes: counted before it is made,
  // and cut when the server closes.
  const release = follow ? logFollows.take(request.ip, () => reply.raw.destroy()) : () => {};
  let stream: Readable | undefined;
  reply.raw.once('close', () => {
    release();
    stream?.destroy();
  });
  try {
    stream = await appliance.logs(name, workload, { follow, ...(tail !== undefined ? { tail } : {}), ...(owner ? { owner } : {}) });
  } catch (err) {
    if (err instanceof ZoneError) throw err;
    // The engine has no such object yet (pending, removed): not the client's fault, not a crash.
    throw new ZoneError('UNAVAILABLE', `logs of ${name}/${workload} are not available now: ${(err as Error).message.split('\n')[0]}`);
  }
  if (reply.raw.destroyed) {
    stream.destroy();
    return reply;
  }
  return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
}
