// GET /v1/grid/terminal/:name/:workload as a WebSocket: a terminal into a running workload
// of the owner on this node (a shell with a TTY in a container, a VM's serial console).
// The page's origin must be this server's (a page of another site cannot open one with
// the user's network position), and the first message is the owner token (JSON
// {token, cols, rows}), made for GET and this path like any other call. Then binary
// frames are the terminal's bytes both ways; text frames are JSON: {resize:[cols,rows]}
// from the page, {ended:"why"} or {error:"why"} from the node, which then closes.
// A terminal holds an engine connection: it takes a log-follow slot (limits.logFollows).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket, RawData } from 'ws';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ZoneError } from '../../lib/errors.ts';
import type { Appliance } from '../../appliance/types.ts';
import type { TerminalSession } from '../../drivers/contract.ts';
import { WorkloadParams } from '../schemas.ts';
import type { StreamSlots } from '../stream-slots.ts';

export const TERMINAL_PREFIX = '/terminal';
/** Time the page has to send its token after the connection opens. */
const SIGN_IN_MS = 10_000;
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Output queued for a slow page before the terminal's output is paused. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

const Size = { cols: Type.Integer({ minimum: 1, maximum: 1000 }), rows: Type.Integer({ minimum: 1, maximum: 1000 }) };
const Hello = Type.Object({ token: Type.String({ maxLength: 8192 }), ...Size }, { additionalProperties: false });
const Resize = Type.Object({ resize: Type.Tuple([Size.cols, Size.rows]) }, { additionalProperties: false });

/** The origin header names this server (scheme-less compare of host:port), or the request came from no browser at all. */
export function sameOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

function parseJson(data: RawData): unknown {
  try {
    return JSON.parse(String(data));
  } catch {
    return undefined;
  }
}

/** A message of the page to the terminal: bytes to type, or a resize. */
function deliver(session: TerminalSession, data: RawData, binary: boolean): void {
  if (binary) {
    session.input.write(data as Buffer);
    return;
  }
  const resize = parseJson(data);
  if (Value.Check(Resize, resize)) void session.resize(resize.resize[0], resize.resize[1]).catch(() => undefined);
}

export function terminalRoutes(appliance: Appliance, slots: StreamSlots) {
  return async (app: FastifyInstance) => {
    await app.register(websocket, { options: { maxPayload: MAX_MESSAGE_BYTES } });
    app.addHook('onRequest', async (request) => {
      if (!sameOrigin(request.headers.origin, request.headers.host)) {
        throw new ZoneError('POLICY', 'a terminal opens only from a page of this node (the Origin header must name it)', '/headers/origin');
      }
    });

    app.get<{ Params: { name: string; workload: string } }>(`${TERMINAL_PREFIX}/:name/:workload`, {
      websocket: true,
      schema: { tags: ['grid'], summary: 'a terminal into a running workload of the owner (WebSocket; the first message is {token, cols, rows})', params: WorkloadParams },
    }, (socket: WebSocket, request: FastifyRequest<{ Params: { name: string; workload: string } }>) => {
      const { name, workload } = request.params;
      let session: TerminalSession | null = null;
      let release = () => {};
      let unsubscribe = () => {};
      const end = (message: { ended: string } | { error: string }) => {
        if (socket.readyState === socket.OPEN) {
          socket.send(JSON.stringify(message));
          socket.close(1000);
        }
      };
      const signIn = setTimeout(() => end({ error: `no token within ${SIGN_IN_MS / 1000} s` }), SIGN_IN_MS);
      socket.on('close', () => {
        clearTimeout(signIn);
        release();
        unsubscribe();
        session?.input.destroy();
        session?.output.destroy();
      });

      const open = async (hello: unknown) => {
        if (!Value.Check(Hello, hello)) throw new ZoneError('INVALID', 'the first message is {"token":"Zone ...","cols":N,"rows":N}', '/message');
        const owner = appliance.tokens.checkOwner(hello.token, { method: 'GET', path: request.url });
        if (!appliance.console) throw new ZoneError('UNAVAILABLE', 'this node has no terminals');
        release = slots.take(request.ip, () => end({ ended: 'the node is closing' }));
        const opened = session = await appliance.console.openTerminal(owner, name, workload, { cols: hello.cols, rows: hello.rows });
        if (socket.readyState !== socket.OPEN) {
          opened.output.destroy();
          return;
        }
        // The session ends with the workload, whatever the engine does with the stream.
        unsubscribe = appliance.onEvent((e) => {
          if (e.owner === owner && e.blueprint === name && e.workload === workload && e.to !== 'running') end({ ended: `${name}/${workload} stopped (${e.to}: ${e.reason})` });
        });
        // A workload that prints faster than the page reads waits (its TTY fills), rather than the node buffering without bound.
        opened.output.on('data', (chunk: Buffer) => {
          socket.send(chunk, () => {
            if (opened.output.isPaused() && socket.bufferedAmount < MAX_BUFFERED_BYTES / 2) opened.output.resume();
          });
          if (socket.bufferedAmount > MAX_BUFFERED_BYTES) opened.output.pause();
        });
        for (const data of early) deliver(opened, data.data, data.binary);
        early.length = 0;
        opened.output.on('end', () => {
          const state = appliance.getBlueprint(name, owner)?.workloads.find((w) => w.workload === workload)?.state;
          end({ ended: state && state !== 'running' ? `${name}/${workload} stopped (${state})` : 'the shell ended' });
        });
        opened.output.on('error', () => end({ ended: `the connection to ${name}/${workload} was lost` }));
        opened.input.on('error', () => undefined);
      };

      /** Keystrokes and resizes sent while the terminal was opening (the page may type at once), bounded. */
      const early: Array<{ data: RawData; binary: boolean }> = [];
      let earlyBytes = 0;
      let opening: Promise<void> | null = null;
      socket.on('message', (data: RawData, binary: boolean) => {
        if (!opening) {
          clearTimeout(signIn);
          opening = open(binary ? undefined : parseJson(data)).catch((err: unknown) => {
            // ZoneErrors say what to fix; anything else is the node's, and not the page's to read.
            if (!(err instanceof ZoneError)) request.log.warn({ err }, 'terminal failed to open');
            end({ error: err instanceof ZoneError ? err.message : 'the terminal could not be opened' });
          });
          return;
        }
        if (session) return deliver(session, data, binary);
        earlyBytes += (data as Buffer).length;
        if (earlyBytes <= MAX_MESSAGE_BYTES) early.push({ data, binary });
      });
    });
  };
}
