// The path tree of a /zone mount: which area a path belongs to, and the read-only
// views (`proc/`, `self/`) as small in-memory trees. Pure: no I/O, time is an argument.
import type { ProcEntry, ProcVolume, SelfInfo } from '../interfaces.ts';

export type ViewNode =
  | { type: 'dir'; entries: Map<string, ViewNode>; mtimeMs: number }
  | { type: 'file'; content: Buffer; mtimeMs: number };

export type Place =
  | { area: 'root' }
  /** `path` is the GridFs path (`/fs/a/b` -> `/a/b`, `/fs` -> `/`). */
  | { area: 'fs'; path: string }
  /** `rest` are the names below `proc/` or `self/`. */
  | { area: 'proc' | 'self'; rest: string[] }
  /** A name at the root that does not exist. */
  | { area: 'none' };

export const ROOT_NAMES = ['fs', 'proc', 'self'];

/** Where a FUSE path (absolute, normalised by libfuse) belongs. */
export function locate(path: string): Place {
  if (path === '/') return { area: 'root' };
  const [top = '', ...rest] = path.slice(1).split('/');
  if (top === 'fs') return { area: 'fs', path: `/${rest.join('/')}` };
  if (top === 'proc' || top === 'self') return { area: top, rest };
  return { area: 'none' };
}

export function lookup(node: ViewNode, names: string[]): ViewNode | null {
  let at: ViewNode = node;
  for (const name of names) {
    if (at.type !== 'dir') return null;
    const next = at.entries.get(name);
    if (!next) return null;
    at = next;
  }
  return at;
}

function file(value: string, mtimeMs: number): ViewNode {
  return { type: 'file', content: Buffer.from(`${value}\n`), mtimeMs };
}

function dir(entries: [string, ViewNode][], mtimeMs: number): ViewNode {
  return { type: 'dir', entries: new Map(entries), mtimeMs };
}

/** `self/`: who the workload is. `ip` is empty when the workload has no overlay address. */
export function selfView(self: SelfInfo, mountedAtMs: number): ViewNode {
  const values: [string, string][] = [['name', self.name], ['blueprint', self.blueprint], ['node', self.node], ['owner', self.owner], ['ip', self.ip ?? '']];
  return dir(values.map(([name, value]) => [name, file(value, mountedAtMs)]), mountedAtMs);
}

/** What /proc/mounts escapes in a path (space, tab, newline, backslash): one line per volume, fields split by spaces. */
const escapeField = (value: string) => value.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);

/** One line per volume: `NAME KIND SIZE USED TARGET ro|rw`, sizes in bytes (empty when it has none). */
export function volumesFile(volumes: readonly ProcVolume[] = []): string {
  return volumes.map((v) => `${[v.name, v.kind, v.sizeBytes, v.usedBytes, v.target].map((f) => escapeField(String(f))).join(' ')} ${v.readOnly ? 'ro' : 'rw'}\n`).join('');
}

/**
 * `proc/<blueprint>/<workload>/{state,node,restarts,kind,since,volumes}`. A blueprint may run on
 * several nodes under one name: the row of `localNode` wins, then the first node by name,
 * so the same table always gives the same tree.
 */
export function procView(entries: ProcEntry[], localNode: string, fetchedAtMs: number): ViewNode {
  const ordered = [...entries].sort((a, b) => Number(a.node !== localNode) - Number(b.node !== localNode) || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const blueprints = new Map<string, Map<string, ViewNode>>();
  for (const e of ordered) {
    const workloads = blueprints.get(e.blueprint) ?? new Map<string, ViewNode>();
    blueprints.set(e.blueprint, workloads);
    if (workloads.has(e.workload)) continue;
    const since = Date.parse(e.since);
    const mtimeMs = Number.isFinite(since) ? since : fetchedAtMs;
    const files: [string, string][] = [['state', e.state], ['node', e.node], ['restarts', String(e.restarts)], ['kind', e.kind], ['since', e.since]];
    const volumes: ViewNode = { type: 'file', content: Buffer.from(volumesFile(e.volumes)), mtimeMs };
    workloads.set(e.workload, dir([...files.map(([name, value]): [string, ViewNode] => [name, file(value, mtimeMs)]), ['volumes', volumes]], mtimeMs));
  }
  return dir([...blueprints].map(([name, workloads]) => [name, { type: 'dir', entries: workloads, mtimeMs: fetchedAtMs }]), fetchedAtMs);
}
