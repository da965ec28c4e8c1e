// zone upgrade BUNDLE | --release REF: hands a signed release to nodes and follows each
// to its outcome (its supervisor switches to the release, health-gated, rolling back on
// failure). Several --node: --canary N upgrades N first, waits for their gate and
// --soak, then the rest in waves of --batch; a node that rolls back stops the rollout.
// In a cluster the bundle travels once: see deliveryOf.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { readBundleManifest } from '../../appliance/release/bundle.ts';
import { releaseDigest } from '../../appliance/release/manifest.ts';
import type { ReleaseAccepted, ReleaseInfo } from '../../appliance/types.ts';
import { ApiError, NodeClient, nodeUrl } from '../client.ts';
import { rolloutWaves } from '../release/rollout.ts';
import { action, CliFailure, EXIT } from '../output.ts';

const collect = (value: string, previous: string[]) => [...previous, value];
const count = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 10_000) throw new CliFailure(`--${name}: a whole number, 0 to 10000`, EXIT.usage);
  return n;
};

interface UpgradeOptions { node: string[]; release?: string; key?: string; canary: number; batch: number; soak: number; timeout: number; then?: string }

/** Polls the node until it runs `version` or reports that its upgrade to it was rolled back. */
async function outcomeOf(client: NodeClient, version: string, since: number, timeoutMs: number): Promise<{ ok: boolean; release: ReleaseInfo | null; text: string }> {
  const until = Date.now() + timeoutMs;
  let last: ReleaseInfo | null = null;
  while (Date.now() < until) {
    // Down while it switches: asked again.
    const info = await client.node().catch((err: unknown) => (err instanceof ApiError ? Promise.reject(err) : null));
    const release = info?.release ?? null;
    last = release ?? last;
    const recent = release?.lastUpgrade && release.lastUpgrade.to === version && Date.parse(release.lastUpgrade.at) >= since;
    if (release && recent && release.lastUpgrade!.outcome === 'rolled-back') {
      return { ok: false, release, text: `ROLLED BACK to ${release.running} after ${release.lastUpgrade!.seconds} s: ${release.lastUpgrade!.reason}` };
    }
    if (release && recent && release.running === version) return { ok: true, release, text: `running ${version} (healthy after ${release.lastUpgrade!.seconds} s)` };
    await new Promise((r) => setTimeout(r, 500));
  }
  return { ok: false, release: last, text: `no outcome within ${timeoutMs / 1000} s (running ${last?.running ?? 'unknown'})` };
}

/**
 * How a rollout hands the release to each node: the bundle is uploaded once, to the first
 * node; when that node stored it in the grid's release store, every other node is asked
 * to take it from there by its digest (a node outside a cluster, or one that cannot find
 * it, is sent the bundle instead). With --release, every node takes it from the store.
 */
function deliveryOf(source: { bundle: Uint8Array; digest: string } | { ref: string }) {
  let first: Promise<ReleaseAccepted> | null = null;
  return async (client: NodeClient): Promise<{ accepted: ReleaseAccepted; how: string }> => {
    const fromStore = async (ref: string) => ({ accepted: await client.takeStoredRelease(ref), how: ' (fetched from the grid\'s release store)' });
    if ('ref' in source) return fromStore(source.ref);
    const upload = async () => {
      const accepted = await client.uploadRelease(source.bundle);
      return { accepted, how: accepted.stored ? ` (uploaded; in the grid's release store as ${accepted.digest.slice(0, 19)}…)` : '' };
    };
    if (!first) {
      const uploading = upload();
      first = uploading.then((u) => u.accepted);
      return uploading;
    }
    if ((await first.catch(() => null))?.stored) {
      try {
        return await fromStore(source.digest);
      } catch (err) {
        if (!(err instanceof ApiError && (err.status === 404 || err.status === 503))) throw err;
      }
    }
    return upload();
  };
}

export function register(program: Command): void {
  program
    .command('upgrade')
    .description('roll a signed release (zone release build/sign) out to nodes: each switches to it health-gated and rolls back on failure; in a cluster the bundle is uploaded once and the other nodes take it from the grid\'s release store')
    .argument('[bundle]', 'the signed bundle (or --release, for one already in the grid\'s release store)')
    .option('--release <ref>', 'a release the grid\'s release store holds: its version or sha256: digest (no bundle is sent)')
    .option('--node <url>', 'a node API (repeat for several; default: $ZONE_NODE or the local node)', collect, [])
    .option('--key <keyfile>', 'a release signer\'s key: it signs the upload\'s token (or $ZONE_READ_KEY)')
    .option('--canary <n>', 'upgrade this many nodes first, and the rest only once they are healthy', count('canary'), 0)
    .option('--then <which>', 'after the canaries: "all" (the rest)', 'all')
    .option('--batch <n>', 'nodes upgraded at once after the canaries', count('batch'), 1)
    .option('--soak <seconds>', 'wait this long after the canaries are healthy before the rest', count('soak'), 0)
    .option('--timeout <seconds>', 'how long a node may take to report its outcome', count('timeout'), 300)
    .action(action(async (bundle: string | undefined, opts: UpgradeOptions) => {
      if (opts.then !== 'all') throw new CliFailure('--then: only "all" is known', EXIT.usage);
      if ((bundle === undefined) === (opts.release === undefined)) throw new CliFailure('give a bundle or --release VERSION|DIGEST (one of them)', EXIT.usage);
      let version = opts.release ?? '';
      let deliver: ReturnType<typeof deliveryOf>;
      if (bundle !== undefined) {
        const { manifest } = await readBundleManifest(bundle);
        version = manifest.version;
        deliver = deliveryOf({ bundle: await readFile(bundle), digest: releaseDigest(manifest) });
      } else {
        deliver = deliveryOf({ ref: opts.release! });
      }
      const nodes = (opts.node.length ? opts.node : [nodeUrl()]).map((url) => nodeUrl(url));
      const waves = rolloutWaves(nodes, opts.canary, Math.max(1, opts.batch));
      for (const [i, wave] of waves.entries()) {
        const results = await Promise.all(wave.map(async (url) => {
          const client = new NodeClient(url, opts.key);
          const since = Date.now();
          const { accepted, how } = await deliver(client);
          version = accepted.version;
          process.stdout.write(`${url}: took release ${accepted.version} (from ${accepted.from}, signed by ${accepted.signers.join(', ')}); switching${how}\n`);
          const outcome = await outcomeOf(client, accepted.version, since - 1000, opts.timeout * 1000);
          process.stdout.write(`${url}: ${outcome.text}\n`);
          return outcome.ok;
        }));
        if (results.some((ok) => !ok)) {
          const left = waves.slice(i + 1).flat();
          throw new CliFailure(`upgrade to ${version} stopped: ${results.filter((ok) => !ok).length} node(s) did not take it${left.length ? `; not asked: ${left.join(', ')}` : ''}`, EXIT.refused);
        }
        if (i === 0 && opts.canary > 0 && waves.length > 1 && opts.soak > 0) {
          process.stdout.write(`canaries healthy; soaking ${opts.soak} s\n`);
          await new Promise((r) => setTimeout(r, opts.soak * 1000));
        }
      }
      process.stdout.write(`upgraded ${nodes.length} node(s) to ${version}\n`);
    }));
}
