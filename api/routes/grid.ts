// /v1/grid: one owner's view of the grid (what `zone shell` uses): the process table of
// every node, and the owner's shared files (/zone/fs). Every call names its owner by
// an owner token (lib/tokens.ts): the key that signed it is the owner, so a key
// only ever reaches its own files and rows. A token is made for one call: this node (a
// restart: the node that runs the workload), its method and its path, once.
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ZoneError } from '../../lib/errors.ts';
import { Name } from '../../blueprints/schema.ts';
import type { Appliance } from '../../appliance/types.ts';
import { errorResponses, refusingUnreadBody } from '../errors.ts';

const ProcVolume = Type.Object({
  name: Type.String(), kind: Type.String(), sizeBytes: Type.Integer(),
  usedBytes: Type.Integer({ description: 'what its data uses, measured when the row was published' }),
  target: Type.String({ description: 'where the container mounts it, or the VM\'s disk device' }), readOnly: Type.Boolean(),
});
const ProcRow = Type.Object({
  node: Type.String(), blueprint: Type.String(), workload: Type.String(), kind: Type.String(),
  state: Type.String(), restarts: Type.Integer(), since: Type.String({ format: 'date-time' }),
  volumes: Type.Optional(Type.Array(ProcVolume, { description: 'the volumes it mounts, when it has any' })),
});
const ProcList = Type.Object({ workloads: Type.Array(ProcRow) });
const PipeRow = Type.Object({
  from: Type.String({ description: 'NODE/BLUEPRINT/WORKLOAD.stdout' }), to: Type.String({ description: 'NODE/BLUEPRINT/WORKLOAD.stdin' }),
  lagMessages: Type.Integer({ description: 'messages the consumer has still to commit' }),
  lagBytes: Type.Integer({ description: 'what the pipe\'s stream stores of them' }),
});
const PipeList = Type.Object({ pipes: Type.Array(PipeRow) });
const NodeWorkloadParams = Type.Object({
  node: Type.String({ pattern: '^[a-z0-9]{1,64}$', description: 'the node id, as ps shows it' }),
  blueprint: Name,
  workload: Name,
});
const Restarting = Type.Object({ node: Type.String(), blueprint: Type.String(), workload: Type.String() });
const DirEntry = Type.Object({
  name: Type.String(), type: Type.Union(['file', 'dir', 'symlink', 'fifo', 'socket'].map((kind) => Type.Literal(kind))),
  size: Type.Integer(), mtime: Type.String({ format: 'date-time' }),
});
const DirListing = Type.Object({ path: Type.String(), entries: Type.Array(DirEntry) });
const FsParams = Type.Object({ '*': Type.String({ maxLength: 4096, description: 'the path inside /zone/fs, e.g. notes/a.txt' }) });

const CONFLICTS = new Set(['EISDIR', 'ENOTDIR', 'EEXIST', 'ENOTEMPTY']);

/** `a/b.txt` (the wildcard) as the GridFs path `/a/b.txt` (`` and `a/` too); `.`, `..` and empty segments are refused. */
export function gridPath(wildcard: string): string {
  const trimmed = wildcard.endsWith('/') ? wildcard.slice(0, -1) : wildcard;
  if (trimmed === '') return '/';
  const parts = trimmed.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new ZoneError('INVALID', `path "/${wildcard}": no empty, "." or ".." segments`, '/params/path');
  }
  return `/${parts.join('/')}`;
}

const notFound = (path: string) => new ZoneError('NOT_FOUND', `${path}: no such file or directory`, '/params/path');

/** A GridFs error as the API's: ENOENT 404, the conflicts 409, both naming the path. */
function fsRefusal(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT') return notFound(path);
  if (typeof code === 'string' && CONFLICTS.has(code)) return new ZoneError('CONFLICT', `${path}: ${code} (${(err as Error).message})`, '/params/path');
  // The FsError names the path already.
  if (code === 'ENOSPC') return new ZoneError('NO_SPACE', (err as Error).message.replace(/^ENOSPC: /, ''));
  return err;
}

function isStream(body: unknown): body is Readable {
  return typeof (body as Readable | undefined)?.pipe === 'function';
}

/** The body as a stream of at most `limit` bytes: past it (or a larger content-length) the PUT is refused with 413. */
function limitedBody(body: Readable, declared: string | undefined, limit: number): Readable {
  const refusal = () => new ZoneError('TOO_LARGE', `the file is larger than ${limit} bytes, the most one PUT takes (limits.gridFileBytes, at most limits.ownerBytes)`, '/body');
  if (declared !== undefined && Number(declared) > limit) throw refusal();
  let seen = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen <= limit) return done(null, chunk);
      // The request itself is left alone: destroying it would cut the socket before the 413.
      body.unpipe(counted);
      done(refusal());
    },
  });
  // The store's reader sees the client's abort or the refusal as this stream's error.
  body.once('error', (err) => counted.destroy(err));
  return body.pipe(counted);
}

/** `fileLimit`: the largest file a PUT takes. */
export function gridRoutes(appliance: Appliance, fileLimit: number) {
  return async (app: FastifyInstance) => {
    // Checked before the body is read: without a valid owner token nothing is buffered.
    const owners = new WeakMap<FastifyRequest, string>();
    app.addHook('onRequest', async (request) => {
      // A call about another node's workload (a restart there) needs a token for that node, which checks it again.
      const { node } = request.params as { node?: string };
      owners.set(request, appliance.tokens.checkOwner(request.headers.authorization, { method: request.method, path: request.url, ...(node ? { aud: node } : {}) }));
    });
    const owner = (request: FastifyRequest) => owners.get(request)!;
    // Files are bytes, streamed into the file store (never held whole), in this plugin only.
    app.addContentTypeParser('application/octet-stream', (_request, body, done) => done(null, body));
    /** The owner's files; a refusal to make its storage (too many owners, JetStream full) says why. */
    const filesOf = (who: string) => appliance.gridFs(who).catch((err: unknown) => { throw fsRefusal(err, '/'); });

    app.get('/proc', {
      schema: {
        tags: ['grid'], summary: "every workload of the token's owner on every node (the grid's process table)",
        response: { 200: ProcList, ...errorResponses(401, 429, 503) },
      },
    }, async (request) => ({ workloads: await appliance.gridProc(owner(request)) }));

    app.post<{ Params: { node: string; blueprint: string; workload: string } }>('/proc/:node/:blueprint/:workload/restart', {
      schema: {
        tags: ['grid'], params: NodeWorkloadParams,
        summary: "stops a workload of the token's owner and starts it again, on this node or another of the grid (the token is made for the node that runs it, which checks it too)",
        response: { 202: Restarting, ...errorResponses(400, 401, 404, 409, 429, 503) },
      },
    }, async (request, reply) => {
      const who = owner(request);
      const { node, blueprint, workload } = request.params;
      await appliance.gridRestart({ owner: who, token: request.headers.authorization ?? '' }, node, blueprint, workload);
      return reply.code(202).send({ node, blueprint, workload });
    });

    app.get('/pipes', {
      schema: {
        tags: ['grid'], summary: "every pipe of the token's owner on the grid and how far behind its consumer is",
        response: { 200: PipeList, ...errorResponses(401, 429, 503) },
      },
    }, async (request) => ({ pipes: await appliance.gridPipes(owner(request)) }));

    const fsRoute = { tags: ['grid'], params: FsParams };
    const read = async (request: FastifyRequest<{ Params: { '*': string } }>, reply: FastifyReply) => {
      const who = owner(request);
      const path = gridPath(request.params['*']);
      const fs = await filesOf(who);
      const entry = await fs.stat(path).catch((err: unknown) => { throw fsRefusal(err, path); });
      if (!entry) throw notFound(path);
      if (entry.type === 'file') {
        const body = await fs.read(path).catch((err: unknown) => { throw fsRefusal(err, path); });
        // No content-length from the stat: a write between it and the read may change the size.
        return reply.type('application/octet-stream').send(body);
      }
      const names = await fs.list(path).catch((err: unknown) => { throw fsRefusal(err, path); });
      const stats = await Promise.all(names.sort().map(async (name) => ({ name, e: await fs.stat(path === '/' ? `/${name}` : `${path}/${name}`) })));
      // An entry removed between the list and its stat is not there any more.
      const entries = stats.flatMap(({ name, e }) => (e ? [{ name, type: e.type, size: e.size, mtime: new Date(e.mtimeMs).toISOString() }] : []));
      return reply.type('application/json; charset=utf-8').send(JSON.stringify({ path, entries }));
    };
    const readSchema = {
      schema: {
        ...fsRoute, summary: "a directory's entries (JSON) or a file's bytes (application/octet-stream) in the owner's /zone/fs",
        response: {
          200: { description: 'a directory listing or the file', content: { 'application/json': { schema: DirListing }, 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } } },
          ...errorResponses(400, 401, 404, 409, 429, 503),
        },
      },
    };
    app.get<{ Params: { '*': string } }>('/fs/*', readSchema, read);

    app.put<{ Params: { '*': string }; Body: unknown }>('/fs/*', {
      config: { upload: true },
      schema: {
        ...fsRoute, summary: "replaces (or creates) a file of the owner's /zone/fs with the body's bytes; the directory must exist",
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 409, 413, 415, 429, 503, 507) },
      },
    }, async (request, reply) => {
      const who = owner(request);
      const path = gridPath(request.params['*']);
      if (path === '/') throw new ZoneError('CONFLICT', '/: is the root directory, not a file', '/params/path');
      if (!isStream(request.body)) throw new ZoneError('INVALID', 'the body is the file\'s bytes: send it as application/octet-stream', '/headers/content-type');
      const stream = request.body;
      await refusingUnreadBody(request, reply, async () => {
        const body = limitedBody(stream, request.headers['content-length'], fileLimit);
        const fs = await filesOf(who);
        await fs.write(path, body).catch((err: unknown) => { throw fsRefusal(err, path); });
      });
      return reply.code(204).send();
    });

    app.post<{ Params: { '*': string } }>('/fs/*', {
      schema: {
        ...fsRoute, summary: "makes a directory of the owner's /zone/fs; its parent must exist",
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 409, 429, 503) },
      },
    }, async (request, reply) => {
      const who = owner(request);
      const path = gridPath(request.params['*']);
      const fs = await filesOf(who);
      await fs.mkdir(path).catch((err: unknown) => { throw fsRefusal(err, path); });
      return reply.code(204).send();
    });

    app.delete<{ Params: { '*': string } }>('/fs/*', {
      schema: {
        ...fsRoute, summary: "removes a file, or an empty directory, of the owner's /zone/fs",
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 409, 429, 503) },
      },
    }, async (request, reply) => {
      const who = owner(request);
      const path = gridPath(request.params['*']);
      if (path === '/') throw new ZoneError('CONFLICT', '/: the root directory cannot be removed', '/params/path');
      const fs = await filesOf(who);
      const entry = await fs.stat(path).catch((err: unknown) => { throw fsRefusal(err, path); });
      if (!entry) throw notFound(path);
      await (entry.type === 'dir' ? fs.rmdir(path) : fs.unlink(path)).catch((err: unknown) => { throw fsRefusal(err, path); });
      return reply.code(204).send();
    });
  };
}
