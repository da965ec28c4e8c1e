// One error handler for the whole API: a ZoneError's code becomes the HTTP status;
// fastify's own refusals (body too large, rate limit, bad media type, query schema)
// get the same body shape. Bodies are one line, never a stack trace or a secret.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ZoneError, type ZoneErrorCode } from '../lib/errors.ts';

export const STATUS_OF: Record<ZoneErrorCode, number> = {
  INVALID: 400,
  SIGNATURE: 401,
  POLICY: 403,
  NOT_FOUND: 404,
  STALE: 409,
  CONFLICT: 409,
  TOO_LARGE: 413,
  CAPACITY: 422,
  TOO_MANY: 429,
  UNAVAILABLE: 503,
  NO_SPACE: 507,
};

/** Codes of refusals that come from the HTTP layer rather than the appliance. */
const HTTP_CODES: Record<number, string> = {
  400: 'INVALID', 401: 'SIGNATURE', 404: 'NOT_FOUND', 406: 'NOT_ACCEPTABLE', 408: 'TIMEOUT',
  413: 'TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 429: 'RATE_LIMITED', 503: 'UNAVAILABLE',
};

export const ErrorBody = Type.Object({
  error: Type.String({ description: 'INVALID, SIGNATURE, POLICY, NOT_FOUND, STALE, TOO_LARGE, CAPACITY, RATE_LIMITED, UNAVAILABLE, ...' }),
  message: Type.String({ description: 'one line: what was wrong and what would be accepted' }),
  field: Type.Optional(Type.String({ description: 'JSON pointer of the field concerned, e.g. /workloads/0/image' })),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'facts for the client, e.g. the numbers of a capacity refusal' })),
}, { $id: 'ZoneError', title: 'Error' });
export type ErrorBody = Static<typeof ErrorBody>;

/** The error responses every route may give, for the OpenAPI document. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, Type.Ref('ZoneError')]));

function oneLine(text: string): string {
  return text.split('\n')[0]!.slice(0, 500);
}

/** The status and body of any error a route threw. */
export function errorReply(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof ZoneError) {
    return {
      status: STATUS_OF[err.code] ?? 400,
      body: { error: err.code, message: oneLine(err.message), ...(err.field ? { field: err.field } : {}), ...(err.details ? { details: err.details } : {}) },
    };
  }
  const fe = err as FastifyError;
  if (fe.validation?.length) {
    // A params or query value that does not match its schema.
    const first = fe.validation[0]!;
    const field = `/${fe.validationContext ?? 'request'}${first.instancePath}`;
    const name = (first.params as { missingProperty?: string }).missingProperty;
    return { status: 400, body: { error: 'INVALID', message: `${name ? `${field}/${name}` : field}: ${first.message ?? 'invalid'}`, field: name ? `${field}/${name}` : field } };
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    return { status, body: { error: HTTP_CODES[status] ?? 'INVALID', message: oneLine(fe.message ?? 'refused') } };
  }
  return { status: status === 503 ? 503 : 500, body: { error: status === 503 ? 'UNAVAILABLE' : 'INTERNAL', message: 'internal error; the node log has the details' } };
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.addSchema(ErrorBody);
  app.setErrorHandler((err, request, reply) => {
    const { status, body } = errorReply(err);
    if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ error: body.error, field: body.field }, 'request refused');
    return reply.code(status).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } satisfies ErrorBody));
}

/**
 * Runs an upload route's `work` on its body. Refused before the body was read whole, the
 * connection ends with the answer: what is left of it (up to hundreds of MiB) is not read.
 * Not for every refusal: one made before the handler (a 401) keeps the connection, so that
 * a client still sending gets its answer instead of a broken pipe.
 */
export async function refusingUnreadBody<T>(request: FastifyRequest, reply: FastifyReply, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!request.raw.complete) void reply.header('connection', 'close');
    throw err;
  }
}
