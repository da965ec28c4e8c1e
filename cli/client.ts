// The HTTP client of the node API, for the `zone` commands: typed calls, API errors
// turned into one-line CliFailures (exit 1), an unreachable node into exit 3.
import { createParser } from 'eventsource-parser';
import type { BlueprintStatus, NodeInfo, SubmitResult, ZoneEvent } from '../appliance/types.ts';
import type { PipeLag, ProcEntry } from '../appliance/pseudokernel/contract.ts';
import type { SigningKeyPair } from '../blueprints/keys.ts';
import { makeOwnerToken, makeReadToken } from '../api/read-token.ts';
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

  /** `keyFile`: the command's --key, used for read tokens unless $ZONE_READ_KEY names another. */
  constructor(readonly url: string, keyFile?: string) {
    this.readKey = readKeyFor(url, keyFile);
  }

  node(): Promise<NodeInfo> {
    return this.json('GET', '/v1/node');
  }

  submit(blueprint: unknown): Promise<SubmitResult> {
    const name = (blueprint as { name?: unknown })?.name;
    return this.json('PUT', `/v1/blueprints/${encodeURIComponent(String(name))}`, blueprint);
  }

  async blueprints(): Promise<BlueprintStatus[]> {
    return (await this.json<{ blueprints: BlueprintStatus[] }>('GET', '/v1/blueprints')).blueprints;
  }

  blueprint(name: string, owner?: string): Promise<BlueprintStatus> {
    return this.json('GET', `/v1/blueprints/${encodeURIComponent(name)}${owner ? `?owner=${encodeURIComponent(owner)}` : ''}`);
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
    const res = await this.request('GET', `/v1/events?${query}`, undefined, { 'last-event-id': String(cursor), accept: 'text/event-stream' }, options.signal);
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
    return (await this.json<{ workloads: ProcEntry[] }>('GET', '/v1/grid/proc', undefined, this.asOwner(owner))).workloads;
  }

  /** Every pipe of `owner`'s key on the grid and its consumer's lag. */
  async gridPipes(owner: SigningKeyPair): Promise<PipeLag[]> {
    return (await this.json<{ pipes: PipeLag[] }>('GET', '/v1/grid/pipes', undefined, this.asOwner(owner))).pipes;
  }

  /** Stops and starts again a workload of `owner`'s key on `node` (any node of the grid). */
  async gridRestart(owner: SigningKeyPair, node: string, blueprint: string, workload: string): Promise<void> {
    await this.request('POST', `/v1/grid/proc/${[node, blueprint, workload].map(encodeURIComponent).join('/')}/restart`, undefined, this.asOwner(owner));
  }

  /** A path of the owner's /zone/fs: a directory's entries, or (as bytes) a file. */
  async gridRead(owner: SigningKeyPair, path: string): Promise<{ dir: GridDirEntry[] } | { file: ReadableStream<Uint8Array> }> {
    const res = await this.request('GET', gridUrl(path), undefined, this.asOwner(owner));
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) return { dir: ((await res.json()) as { entries: GridDirEntry[] }).entries };
    return { file: res.body ?? new ReadableStream() };
  }

  async gridWrite(owner: SigningKeyPair, path: string, bytes: Uint8Array): Promise<void> {
    await this.request('PUT', gridUrl(path), bytes, { ...this.asOwner(owner), 'content-type': 'application/octet-stream' });
  }

  async gridMkdir(owner: SigningKeyPair, path: string): Promise<void> {
    await this.request('POST', gridUrl(path), undefined, this.asOwner(owner));
  }

  async gridRemove(owner: SigningKeyPair, path: string): Promise<void> {
    await this.request('DELETE', gridUrl(path), undefined, this.asOwner(owner));
  }

  private asOwner(owner: SigningKeyPair): Record<string, string> {
    return { authorization: makeOwnerToken(owner) };
  }

  private async json<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await this.request(method, path, body, headers);
    return (await res.json()) as T;
  }

  /** `body`: bytes are sent as they are (with the caller's content-type), anything else as JSON. */
  private async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    const bytes = body instanceof Uint8Array;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          ...(body !== undefined && !bytes ? { 'content-type': 'application/json' } : {}),
          ...(this.readKey ? { authorization: makeReadToken(this.readKey) } : {}),
          // The caller's own (an owner token) win.
          ...headers,
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

/** An entry of a /zone/fs directory as the node lists it. */
export interface GridDirEntry { name: string; type: 'file' | 'dir'; size: number; mtime: string }

/** The URL path of a /zone/fs path (`/a b/c` -> `/v1/grid/fs/a%20b/c`). */
function gridUrl(path: string): string {
  return `/v1/grid/fs/${path.split('/').filter(Boolean).map(encodeURIComponent).join('/')}`;
}

function unreachable(url: string, err: unknown): CliFailure {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return new CliFailure(`cannot reach the node at ${url} (${cause?.code ?? cause?.message ?? (err as Error).message})`, EXIT_UNREACHABLE);
}
