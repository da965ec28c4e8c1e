// /v1/grid/images: an owner's images in the grid's image store, and their uploads in
// parts (POST uploads -> PATCH parts at their offset -> POST commit, which checks the
// whole archive against its own digests and stores it once). Every call names its owner
// by an owner token (lib/tokens.ts), as the other grid routes.
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ZoneError } from '../../lib/errors.ts';
import type { Appliance } from '../../appliance/types.ts';
import { DIGEST_PATTERN } from '../../blueprints/image-ref.ts';
import { errorResponses, refusingUnreadBody } from '../errors.ts';

const Upload = Type.Object({
  id: Type.String(), size: Type.Integer({ description: 'bytes of the whole archive' }),
  offset: Type.Integer({ description: 'bytes received so far: where the next part starts' }),
});
const UploadParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{32}$' }) });
const Kind = Type.Union([Type.Literal('container'), Type.Literal('disk')], { description: 'container: a docker save or OCI archive (digest: its config\'s sha256); disk: a qcow2 or raw VM disk (digest: the file\'s sha256)' });
const NewUpload = Type.Object({
  size: Type.Integer({ minimum: 1, maximum: 2 ** 40, description: 'bytes of the whole archive or disk' }),
  kind: Type.Optional(Kind),
  name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', description: 'the name a disk is listed under (an archive names itself)' })),
}, { additionalProperties: false });
const Committed = Type.Object({
  digest: Type.String({ pattern: DIGEST_PATTERN, description: 'pin it as name@DIGEST' }), name: Type.String(), kind: Kind, size: Type.Integer(),
  stored: Type.Boolean({ description: 'false: the grid had it already' }),
});
const ImageRow = Type.Object({
  digest: Type.String(), name: Type.String(), kind: Kind, size: Type.Integer(), pushedAt: Type.String({ format: 'date-time' }),
  usedBy: Type.Array(Type.Object({ node: Type.String(), at: Type.String({ format: 'date-time' }) }), { description: 'the nodes whose blueprints pin it' }),
});
const ImageList = Type.Object({ images: Type.Array(ImageRow) });
const Offset = Type.Object({ 'upload-offset': Type.String({ pattern: '^[0-9]{1,15}$', description: 'where this part starts: the upload\'s offset' }) });

export function imageRoutes(appliance: Appliance) {
  return async (app: FastifyInstance) => {
    const owners = new WeakMap<FastifyRequest, string>();
    // Checked before the body is read: without a valid owner token nothing is written.
    app.addHook('onRequest', async (request) => {
      owners.set(request, appliance.tokens.checkOwner(request.headers.authorization, { method: request.method, path: request.url }));
    });
    const owner = (request: FastifyRequest) => owners.get(request)!;
    const images = () => {
      const service = appliance.images;
      if (!service) throw new ZoneError('UNAVAILABLE', 'this node has no grid image store (its pseudokernel does not run)');
      return service;
    };
    // Parts are bytes, streamed into the upload's file, in this plugin only.
    app.addContentTypeParser('application/octet-stream', (_request, body, done) => done(null, body));

    app.get('/', {
      schema: { tags: ['grid'], summary: "the token's owner's images in the grid, with the nodes that pin them", response: { 200: ImageList, ...errorResponses(401, 503) } },
    }, async (request) => ({ images: (await images().list(owner(request))).map(({ owner: _owner, ...row }) => row) }));

    app.post<{ Body: { size: number; kind?: 'container' | 'disk'; name?: string } }>('/uploads', {
      schema: { tags: ['grid'], summary: 'opens an upload of an image archive (docker save) or a VM disk (kind disk) of `size` bytes', body: NewUpload, response: { 201: Upload, ...errorResponses(400, 401, 429, 503, 507) } },
    }, async (request, reply) => reply.code(201).send(await images().begin(owner(request), request.body.size, {
      kind: request.body.kind ?? 'container', ...(request.body.name ? { name: request.body.name } : {}),
    })));

    app.get<{ Params: { id: string } }>('/uploads/:id', {
      schema: { tags: ['grid'], summary: 'how much of the upload arrived (to resume a broken one)', params: UploadParams, response: { 200: Upload, ...errorResponses(400, 401, 404, 503) } },
    }, async (request) => images().status(owner(request), request.params.id));

    app.patch<{ Params: { id: string } }>('/uploads/:id', {
      config: { upload: true },
      schema: {
        tags: ['grid'], summary: 'appends the body (application/octet-stream) at the upload\'s offset; 409 names the offset when it is not there',
        params: UploadParams, headers: Offset, response: { 200: Upload, ...errorResponses(400, 401, 404, 409, 413, 503) },
      },
    }, async (request, reply) => {
      const body = request.body as Readable | undefined;
      if (typeof body?.pipe !== 'function') throw new ZoneError('INVALID', 'a part is bytes: send it as application/octet-stream', '/headers/content-type');
      return refusingUnreadBody(request, reply, () => images().append(owner(request), request.params.id, Number(request.headers['upload-offset']), body));
    });

    app.post<{ Params: { id: string } }>('/uploads/:id/commit', {
      schema: {
        tags: ['grid'], summary: 'checks the whole archive (config and layers against their sha256) or disk (qcow2/raw standing alone) and stores it in the grid under its digest',
        params: UploadParams, response: { 201: Committed, ...errorResponses(400, 401, 404, 409, 503, 507) },
      },
    }, async (request, reply) => reply.code(201).send(await images().commit(owner(request), request.params.id)));
  };
}
