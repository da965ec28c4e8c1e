// The key the zone commands sign read tokens with, for nodes that protect reads (every
// node listening beyond loopback does by default, accepting its trust policy's
// signers): $ZONE_READ_KEY (a key file) when set, else the command's own --key (a
// signer's), else the operator key of a local cluster (`zone cluster up`, state under
// .zone/cluster/NAME here) that has a node at this URL; none: no token is sent.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSigningKey } from '../blueprints/keys.ts';
import { type SigningKeyPair } from '../lib/ed25519.ts';

/** Where `zone cluster up` keeps its clusters by default (cli/commands/cluster.ts). */
const CLUSTERS_DIR = join('.zone', 'cluster');

/** The operator key file of the local cluster that has a node at `url`; null when none here has. */
function clusterKeyFile(url: string, cwd: string): string | null {
  const root = join(cwd, CLUSTERS_DIR);
  if (!existsSync(root)) return null;
  for (const name of readdirSync(root)) {
    try {
      const state = JSON.parse(readFileSync(join(root, name, 'cluster.json'), 'utf8')) as { operatorKey?: unknown; nodes?: { api?: unknown }[] };
      if (typeof state.operatorKey === 'string' && state.nodes?.some((n) => n.api === url)) return state.operatorKey;
    } catch {
      // Not a cluster's state (or one being written): not the one.
    }
  }
  return null;
}

export function readKeyFor(url: string, keyFile?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SigningKeyPair | null {
  const file = env.ZONE_READ_KEY || keyFile || clusterKeyFile(url, cwd);
  return file ? readSigningKey(file) : null;
}
