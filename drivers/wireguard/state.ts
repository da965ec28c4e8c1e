// The driver's memory of the networks it made on this node: one small JSON file per
// network under the driver's data dir, so `list()` finds ours after a restart (the
// namespace names alone could be another node's on a shared machine).
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** Network ids of this scheme (32 hex) and of appliances before it (8 hex), whose networks are still found to be removed. */
const ID_PATTERN = '^zn-(?:[0-9a-f]{8}|[0-9a-f]{32})$';
export const NETWORK_ID = new RegExp(ID_PATTERN);

export const NetworkState = Type.Object({
  id: Type.String({ pattern: ID_PATTERN }),
  node: Type.String(),
  owner: Type.String(),
  blueprint: Type.String(),
  network: Type.String(),
  interface: Type.String({ pattern: '^zw-(?:[0-9a-f]{8}|[0-9a-f]{12})$' }),
  implementation: Type.Union([Type.Literal('kernel'), Type.Literal('wireguard-go')]),
  /** The wireguard-go process serving the interface, when there is one. */
  pid: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
});
export type NetworkState = Static<typeof NetworkState>;

export class StateFiles {
  constructor(readonly dir: string) {}

  path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** The state of `id`; null when there is none. A file that does not parse is an error naming it. */
  async read(id: string): Promise<NetworkState | null> {
    let text: string;
    try {
      text = await readFile(this.path(id), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new Error(`${this.path(id)} is not JSON`);
    }
    if (!Value.Check(NetworkState, value)) {
      const first = Value.Errors(NetworkState, value).First();
      throw new Error(`${this.path(id)}: ${first?.path || '/'}: ${first?.message ?? 'invalid'}`);
    }
    return value;
  }

  /** Written to a temporary file and renamed, so a crash never leaves half a file. */
  async write(state: NetworkState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path(state.id)}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.path(state.id));
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  async ids(): Promise<string[]> {
    const names = await readdir(this.dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).filter((id) => NETWORK_ID.test(id)).sort();
  }
}
