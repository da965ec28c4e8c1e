// The HTTP client of the node API, for the `zone` commands: typed calls, API errors
// turned into one-line CliFailures (exit 1), an unreachable node into exit 3.
import { createParser } from 'eventsource-parser';
import type { BlueprintStatus, NodeInfo, ReleaseAccepted, SubmitResult, VolumeStatus, ZoneEvent } from '../appliance/types.ts';
import type { PipeLag, ProcEntry } from '../appliance/pseudokernel/interfaces.ts';
import type { SigningKeyPair } from '../lib/ed25519.ts';
import { GRID_AUDIENCE, makeOwnerToken, makeReadToken, scopePath } from '../lib/tokens.ts';
import { restartPath } from '../appliance/pseudokernel/proc/node-control.ts';
import { canonicalJson } from '../blueprints/canonical.ts';
import { CliFailure, EXIT } from './output.ts';
import { readKeyFor } from './read-key.ts';

export const DEFAULT_NODE = 'http://127.0.0.1:7700';
/** Exit code when the node cannot be reached (the others are in cli/output.ts). */
export const EXIT_UNREACHABLE = 3;

/** The node URL of a command: --node, else $ZONE_NODE, else the local default. */
export function nodeUrl(option?: string): string {
  const url = option ?? process.env.ZONE_NODE ?? DEFAULT_NODE;
  if (!/^https?:\/\/[^/\s]+\/?$/.test(url)) throw new CliFailure(`--node: "${url}" is not a node URL (e.g. ${DEFAULT_NODE})`, EXIT.usage);
  return url.replace(/\/$/, '');
}

export const nodeOption = ['--node <url>', `the node API (default: $ZONE_NODE or ${DEFAULT_NODE})`] as const;

interface ApiErrorBody { error?: string; message?: string; field?: string; details?: Record<string, unknown> }

/** A refusal from the node, as the user reads it: `refused (409 STALE): /version: ...`. */
export class ApiError extends CliFailure {
  constructor(readonly status: number, readonly body: ApiErrorBody) {
    const details = body.details ? ` (${Object.entries(body.details).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')})` : '';
    super(`refused (${status} ${body.error ?? 'ERROR'}): ${[body.field, body.message ?? 'no reason given'].filter(Boolean).join(': ')}${details}`, EXIT.refused);
    this.name = 'ApiError';
  }
}

export class NodeClient {
  /** Signs read tokens, for nodes that protect reads (see cli/read-key.ts). */
  private readonly readKey: SigningKeyPair | null;
  private id: Promise<string> | null = null;

  /** `keyFile`: the command's --key, used for read tokens unless $ZONE_READ_KEY names another. */
  constructor(readonly url: string, keyFile?: string) {
    this.readKey = readKeyFor(url, keyFile);
  }

  node(): Promise<NodeInfo> {
    return this.json('GET', '/v1/node');
  }

  /** Uploads a signed release bundle (gzip bytes); the node's supervisor then switches to it. */
  uploadRelease(bundle: Uint8Array): Promise<ReleaseAccepted> {
    return this.json('PUT', '/v1/node/release', { body: bundle, headers: { 'content-type': 'application/gzip' } });
  }

  /** Asks the node to take release `ref` (a version or `sha256:` digest) from the grid's release store. */
  takeStoredRelease(ref: string): Promise<ReleaseAccepted> {
    return this.json('PUT', '/v1/node/release/stored', { body: { release: ref } });
  }

  submit(blueprint: unknown): Promise<SubmitResult> {
    const name = (blueprint as { name?: unknown })?.name;
    return this.json('PUT', `/v1/blueprints/${encodeURIComponent(String(name))}`, { body: inCanonicalOrder(blueprint) });
  }

  async blueprints(): Promise<BlueprintStatus[]> {
    return (await this.json<{ blueprints: BlueprintStatus[] }>('GET', '/v1/blueprints')).blueprints;
  }

  async volumes(owner?: string): Promise<VolumeStatus[]> {
    return (await this.json<{ volumes: VolumeStatus[] }>('GET', `/v1/volumes${owner ? `?owner=${encodeURIComponent(owner)}` : ''}`)).volumes;
  }

  blueprint(name: string, owner?: string, signal?: AbortSignal): Promise<BlueprintStatus> {
    return this.json('GET', `/v1/blueprints/${encodeURIComponent(name)}${owner ? `?owner=${encodeURIComponent(owner)}` : ''}`, signal ? { signal } : {});
  }

  /** The log stream of one workload. */
  async logs(name: string, workload: string, options: { follow: boolean; tail?: number; owner?: string }): Promise<ReadableStream<Uint8Array>> {
    const query = new URLSearchParams({ follow: String(options.follow) });
    if (options.tail !== undefined) query.set('tail', String(options.tail));
    if (options.owner) query.set('owner', options.owner);
    const res = await this.request('GET', `/v1/blueprints/${encodeURIComponent(name)}/workloads/${encodeURIComponent(workload)}/logs?${query}`);
    return res.body ?? new ReadableStream();
  }

  /**
   * Calls `onEvent` for each event after `after` (resuming with Last-Event-ID when the
   * stream breaks) until the stream ends (follow false), `signal` aborts, or onEvent returns true.
   */
  async events(options: { after?: number; blueprint?: string; follow: boolean; signal?: AbortSignal }, onEvent: (e: ZoneEvent) => boolean | void): Promise<void> {
    let cursor = options.after ?? 0;
    const query = new URLSearchParams({ follow: String(options.follow) });
    if (options.blueprint) query.set('blueprint', options.blueprint);
    const res = await this.request('GET', `/v1/events?${query}`, { headers: { 'last-event-id': String(cursor), accept: 'text/event-stream' }, ...(options.signal ? { signal: options.signal } : {}) });
    let done = false;
    const parser = createParser({
      onEvent: (message) => {
        if (done) return;
        const event = JSON.parse(message.data) as ZoneEvent;
        cursor = event.seq;
        if (onEvent(event) === true) done = true;
      },
    });
    const decoder = new TextDecoder();
    const reader = res.body!.getReader();
    try {
      while (!done) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      if (options.signal?.aborted) return;
      throw unreachable(this.url, err);
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /** Every workload of `owner`'s key on every node (the grid's process table). */
  async gridProc(owner: SigningKeyPair): Promise<ProcEntry[]> {
    return (await this.json<{ workloads: ProcEntry[] }>('GET', '/v1/grid/proc', { owner })).workloads;
  }

  /** Every pipe of `owner`'s key on the grid and its consumer's lag. */
  async gridPipes(owner: SigningKeyPair): Promise<PipeLag[]> {
    return (await this.json<{ pipes: PipeLag[] }>('GET', '/v1/grid/pipes', { owner })).pipes;
  }

  /**
   * Stops and starts again a workload of `owner`'s key on `node` (any node of the grid).
   * The token is made for `node`, which checks it when this node passes it on.
   */
  async gridRestart(owner: SigningKeyPair, node: string, blueprint: string, workload: string): Promise<void> {
    const [n, b, w] = [node, blueprint, workload].map(encodeURIComponent) as [string, string, string];
    await this.request('POST', restartPath(n, b, w), { owner, aud: node });
  }

  /** A path of the owner's /zone/fs: a directory's entries, or (as bytes) a file. */
  async gridRead(owner: SigningKeyPair, path: string): Promise<{ dir: GridDirEntry[] } | { file: ReadableStream<Uint8Array> }> {
    const res = await this.request('GET', gridUrl(path), { owner });
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) return { dir: ((await res.json()) as { entries: GridDirEntry[] }).entries };
    return { file: res.body ?? new ReadableStream() };
  }

  async gridWrite(owner: SigningKeyPair, path: string, bytes: Uint8Array): Promise<void> {
    await this.request('PUT', gridUrl(path), { owner, body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  }

  async gridMkdir(owner: SigningKeyPair, path: string): Promise<void> {
    await this.request('POST', gridUrl(path), { owner });
  }

  async gridRemove(owner: SigningKeyPair, path: string): Promise<void> {
    await this.request('DELETE', gridUrl(path), { owner });
  }

  /** `owner`'s images in the grid's store, with the nodes that pin them. */
  async images(owner: SigningKeyPair): Promise<ImageRow[]> {
    return (await this.json<{ images: ImageRow[] }>('GET', '/v1/grid/images/', { owner })).images;
  }

  /** Opens an upload of an image archive (or, `kind: 'disk'`, a VM disk) of `size` bytes. */
  imageUpload(owner: SigningKeyPair, size: number, about: { kind: ImageKind; name?: string } = { kind: 'container' }): Promise<ImageUpload> {
    return this.json('POST', '/v1/grid/images/uploads', { owner, body: { size, ...about } });
  }

  /** Where an upload stands (to resume it). */
  imageUploadStatus(owner: SigningKeyPair, id: string): Promise<ImageUpload> {
    return this.json('GET', `/v1/grid/images/uploads/${encodeURIComponent(id)}`, { owner });
  }

  /** Appends `bytes` at `offset`. */
  imagePart(owner: SigningKeyPair, id: string, offset: number, bytes: Uint8Array): Promise<ImageUpload> {
    return this.json('PATCH', `/v1/grid/images/uploads/${encodeURIComponent(id)}`, {
      owner, body: bytes, headers: { 'content-type': 'application/octet-stream', 'upload-offset': String(offset) },
    });
  }

  /** Checks the whole upload and stores it in the grid. */
  imageCommit(owner: SigningKeyPair, id: string): Promise<ImageCommit> {
    return this.json('POST', `/v1/grid/images/uploads/${encodeURIComponent(id)}/commit`, { owner });
  }

  private async json<T>(method: string, path: string, call: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, call);
    return (await res.json()) as T;
  }

  /**
   * The node's id, the audience of the tokens made for it: asked once, from /healthz
   * (open, so that a token can be made for the first call); a node that does not say
   * gets tokens for the whole grid.
   */
  private nodeId(): Promise<string> {
    this.id ??= fetch(`${this.url}/healthz`).then(async (res) => {
      const body = (await res.json().catch(() => ({}))) as { node?: unknown };
      return typeof body.node === 'string' ? body.node : GRID_AUDIENCE;
    }, (err: unknown) => {
      this.id = null;
      throw unreachable(this.url, err);
    });
    return this.id;
  }

  /**
   * The Authorization header of one request: an owner token when the call is an owner's,
   * else a read token when there is a read key. A new one each time: a node accepts a
   * token once, for the method and path it was made for.
   */
  private async authorization(method: string, path: string, call: RequestOptions): Promise<Record<string, string>> {
    const key = call.owner ?? this.readKey;
    if (!key) return {};
    // The path as fetch will send it (with . and .. segments resolved).
    const scope = { aud: call.aud ?? await this.nodeId(), method, path: scopePath(new URL(path, this.url).pathname) };
    return { authorization: call.owner ? makeOwnerToken(call.owner, scope) : makeReadToken(key, scope) };
  }

  /** `body`: bytes are sent as they are (with the caller's content-type), anything else as JSON. */
  private async request(method: string, path: string, call: RequestOptions = {}): Promise<Response> {
    let res: Response;
    const { body, signal } = call;
    const bytes = body instanceof Uint8Array;
    const authorization = await this.authorization(method, path, call);
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          ...(body !== undefined && !bytes ? { 'content-type': 'application/json' } : {}),
          ...authorization,
          ...call.headers,
        },
        ...(body !== undefined ? { body: bytes ? (body as Uint8Array<ArrayBuffer>) : JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw unreachable(this.url, err);
    }
    if (!res.ok) {
      const text = await res.text();
      let parsed: ApiErrorBody;
      try {
        parsed = JSON.parse(text) as ApiErrorBody;
      } catch {
        parsed = { message: `${res.statusText || 'error'} (not a Zone node?)` };
      }
      throw new ApiError(res.status, parsed);
    }
    return res;
  }
}

/** One call: its body, extra headers, abort signal; `owner` makes it an owner's call, with a token for `aud` (default: this node). */
interface RequestOptions { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal; owner?: SigningKeyPair; aud?: string }

/** An image of the grid's store as the node lists it. */
export type ImageKind = 'container' | 'disk';

export interface ImageRow { digest: string; name: string; kind: ImageKind; size: number; pushedAt: string; usedBy: { node: string; at: string }[] }

export interface ImageUpload { id: string; size: number; offset: number }

export interface ImageCommit { digest: string; name: string; kind: ImageKind; size: number; stored: boolean }

/** An entry of a /zone/fs directory as the node lists it. */
export interface GridDirEntry { name: string; type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket'; size: number; mtime: string }

/** The URL path of a /zone/fs path (`/a b/c` -> `/v1/grid/fs/a%20b/c`). */
function gridUrl(path: string): string {
  return `/v1/grid/fs/${path.split('/').filter(Boolean).map(encodeURIComponent).join('/')}`;
}

function unreachable(url: string, err: unknown): CliFailure {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = (err as Error).name === 'TimeoutError' ? 'no answer in time' : cause?.code ?? cause?.message ?? (err as Error).message;
  return new CliFailure(`cannot reach the node at ${url} (${why})`, EXIT_UNREACHABLE);
}

/**
 * The blueprint with its keys in RFC 8785 order, the same data: a node then gets its
 * canonical bytes with one JSON.stringify instead of sorting every object (bench/verify.ts).
 * One the node would refuse anyway is sent as it is, to be refused there with its reason.
 */
function inCanonicalOrder(blueprint: unknown): unknown {
  try {
    return JSON.parse(canonicalJson(blueprint));
  } catch {
    return blueprint;
  }
}
