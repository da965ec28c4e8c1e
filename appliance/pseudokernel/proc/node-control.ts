// Asking another node of the grid to act on one of its workloads (zone shell's `kill`):
// a NATS request to `zone.node.<id>.restart`, answered by that node's appliance. The
// request carries the caller's owner token itself, and the answering node checks it in
// full: the client made it for that node (audience Y, or the grid) and for the restart's
// path, restartPath(Y, ...), and Y accepts its nonce once. Y does not trust the asking
// node X instead: then any node, or anything that can publish on this subject, could
// restart any owner's workloads anywhere; this way a node (or a captured request) can do
// no more with a token than the one restart its owner asked for, and a token made for X
// is refused at Y.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { RequestError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Name } from '../../../blueprints/schema.ts';
import { ZONE_ERROR_CODES, ZoneError, type ZoneErrorCode } from '../../../lib/errors.ts';

export const RestartRequest = Type.Object({
  /** The Authorization header value the caller gave its node: `Zone PAYLOAD.SIG`, made for the answering node. Never logged. */
  token: Type.String({ maxLength: 2048 }),
  blueprint: Name,
  workload: Name,
}, { additionalProperties: false });
export type RestartRequest = Static<typeof RestartRequest>;

const Reply = Type.Union([
  Type.Object({ ok: Type.Literal(true) }),
  Type.Object({ error: Type.String(), message: Type.String({ maxLength: 2000 }), field: Type.Optional(Type.String()) }),
]);
type Reply = Static<typeof Reply>;

const CODES = new Set<string>(ZONE_ERROR_CODES);
/** How long a node waits for the other one's answer. */
const REQUEST_TIMEOUT_MS = 10_000;

export const restartSubject = (node: string) => `zone.node.${node}.restart`;

/** The API path of a restart (POST), which the owner's token for it is scoped to. */
export const restartPath = (node: string, blueprint: string, workload: string) => `/v1/grid/proc/${node}/${blueprint}/${workload}/restart`;

/**
 * Answers this node's restart requests with `restart` (which throws ZoneError when it
 * refuses); the reply carries the refusal's code and message. Returns the subscription.
 */
export function serveRestarts(nc: NatsConnection, node: string, restart: (request: RestartRequest) => Promise<void>, logger: Logger): Subscription {
  return nc.subscribe(restartSubject(node), {
    callback: (err, msg) => {
      if (err) {
        logger.warn({ err }, 'restart requests: the subscription failed');
        return;
      }
      void (async (): Promise<Reply> => {
        let request: unknown;
        try {
          request = msg.json();
        } catch {
          return { error: 'INVALID', message: 'the request is not JSON' };
        }
        if (!Value.Check(RestartRequest, request)) {
          const first = Value.Errors(RestartRequest, request).First();
          return { error: 'INVALID', message: `the request is not {token, blueprint, workload}: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`, field: first?.path ?? '/' };
        }
        try {
          await restart(request);
          return { ok: true };
        } catch (e) {
          if (e instanceof ZoneError) return { error: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) };
          logger.error({ err: e, blueprint: request.blueprint, workload: request.workload }, 'restart request failed');
          return { error: 'UNAVAILABLE', message: `node ${node} could not restart it: ${(e as Error).message}` };
        }
      })().then((reply) => {
        msg.respond(JSON.stringify(reply));
      }).catch((e: unknown) => logger.warn({ err: e }, 'restart requests: the reply could not be sent'));
    },
  });
}

/** Asks `node` to restart a workload of the token's owner; throws ZoneError with that node's refusal, or UNAVAILABLE. */
export async function requestRestart(nc: NatsConnection, node: string, request: RestartRequest, timeoutMs = REQUEST_TIMEOUT_MS): Promise<void> {
  let reply: unknown;
  try {
    reply = (await nc.request(restartSubject(node), JSON.stringify(request), { timeout: timeoutMs })).json();
  } catch (err) {
    if (err instanceof RequestError && err.isNoResponders()) throw new ZoneError('NOT_FOUND', `node ${node} is not on this grid (no node of that id answers)`, '/params/node');
    throw new ZoneError('UNAVAILABLE', `node ${node} did not answer: ${(err as Error).message}`);
  }
  if (!Value.Check(Reply, reply)) throw new ZoneError('UNAVAILABLE', `node ${node} answered with something that is not a reply`);
  if ('ok' in reply) return;
  const code = CODES.has(reply.error) ? reply.error as ZoneErrorCode : 'UNAVAILABLE';
  throw new ZoneError(code, reply.message, reply.field);
}
