// GET /v1/node: who this node is, its keys, drivers, capacity and software release.
// PUT /v1/node/release: a signed release bundle (zone upgrade), from a release signer
// (a read token of one of their keys), streamed and checked as it unpacks.
// PUT /v1/node/release/stored: the same for a release another node of the grid stored.
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Appliance } from '../../appliance/types.ts';
import { VERSION_PATTERN } from '../../appliance/release/manifest.ts';
import { ZoneError } from '../../lib/errors.ts';
import { errorResponses, refusingUnreadBody } from '../errors.ts';
import { Type } from '@sinclair/typebox';

const ReleaseAccepted = Type.Object({
  version: Type.String({ description: 'the release taken' }),
  digest: Type.String({ description: 'sha256: of its signed manifest: what other nodes of the grid may be asked to take (PUT /v1/node/release/stored)' }),
  from: Type.String({ description: 'the version it replaces' }),
  signers: Type.Array(Type.String(), { description: 'who counted toward the trust policy\'s release threshold' }),
  stored: Type.Boolean({ description: 'it is in the grid\'s release store (this node is part of a NATS cluster): other nodes may take it by reference' }),
});

const StoredReleaseRef = Type.Object({
  release: Type.String({ maxLength: 80, pattern: `^(${VERSION_PATTERN.slice(1, -1)}|sha256:[0-9a-f]{64})$`, description: 'a version (MAJOR.MINOR.PATCH) or sha256: the digest of a release\'s signed manifest' }),
}, { additionalProperties: false });

export function nodeRoutes(appliance: Appliance) {
  return async (app: FastifyInstance) => {
    app.get('/', {
      schema: {
        tags: ['node'], summary: 'identity, public keys, drivers, capacity and software release of this node',
        response: { 200: Type.Ref('NodeInfo'), ...errorResponses(401, 429) },
      },
    }, async () => appliance.nodeInfo());

    // Only a release signer's token: nothing else may make the node fetch and unpack a release.
    const releaseSigner = async (request: FastifyRequest) => {
      if (!appliance.installRelease || !appliance.releaseUploaders) throw new ZoneError('UNAVAILABLE', 'this node takes no releases');
      appliance.tokens.checkRead(request.headers.authorization, { method: request.method, path: request.url }, { keys: appliance.releaseUploaders() });
    };

    app.put('/release/stored', {
      onRequest: releaseSigner,
      schema: {
        tags: ['node'],
        summary: 'take a release from the grid\'s release store (where a node of the cluster put the bundle it was sent): fetched, verified and unpacked as an upload is, then the supervisor switches to it',
        body: StoredReleaseRef,
        response: { 202: ReleaseAccepted, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    }, async (request, reply) => {
      if (!appliance.installStoredRelease) throw new ZoneError('UNAVAILABLE', 'this node takes no releases from the grid');
      return reply.code(202).send(await appliance.installStoredRelease((request.body as { release: string }).release));
    });

    // A bundle is bytes, streamed into the release's folder (the bound is the appliance's), in this plugin only.
    app.addContentTypeParser('application/gzip', (_request, body, done) => done(null, body));
    app.put('/release', {
      // Checked before the body is read: without a release signer's token nothing is written.
      onRequest: releaseSigner,
      config: { upload: true },
      schema: {
        tags: ['node'],
        summary: 'a signed release bundle (zone release build/sign; application/gzip): verified, unpacked, then the supervisor switches to it, health-gated, rolling back on failure (watch GET /v1/node and the events)',
        response: { 202: ReleaseAccepted, ...errorResponses(400, 401, 403, 409, 413, 503) },
      },
    }, async (request, reply) => {
      const body = request.body as Readable | undefined;
      if (typeof body?.pipe !== 'function') throw new ZoneError('INVALID', 'a release bundle is bytes: send it as application/gzip', '/headers/content-type');
      return reply.code(202).send(await refusingUnreadBody(request, reply, () => appliance.installRelease!(body)));
    });
  };
}
