// Whether the API's read routes need a read token: on by default as soon as the API
// listens on any address other than loopback (a node on an edge grid faces whoever can
// reach it), accepting tokens of the trust policy's signers; the config says otherwise
// only explicitly (`readTokens.public: true`, or its own `readTokens.keys`).
import ipaddr from 'ipaddr.js';
import type { ReadTokenOptions } from '../lib/tokens.ts';
import type { TrustPolicy } from '../blueprints/policy.ts';
import type { NodeConfig } from './config.ts';

export interface ReadProtection {
  /** The token check for the API; null: reads are open. */
  options: ReadTokenOptions | null;
  /** One line for the node's log: why reads are (not) protected and how to change it. */
  summary: string;
  /** On because nothing was configured and the API is reachable beyond loopback. */
  defaulted: boolean;
}

/** A host that only this machine reaches: a loopback address or `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (!ipaddr.isValid(host)) return false;
  const address = ipaddr.process(host);
  return address.range() === 'loopback';
}

export function readProtection(config: Pick<NodeConfig, 'listen' | 'readTokens'>, policy: TrustPolicy): ReadProtection {
  const signers = [...new Set(policy.signers.map((s) => s.key))];
  const ttl = config.readTokens?.maxTtlSeconds !== undefined ? { maxTtlSeconds: config.readTokens.maxTtlSeconds } : {};
  const exposed = config.listen.filter((l) => !isLoopback(l.host)).map((l) => `${l.host}:${l.port}`);
  if (config.readTokens?.public) {
    return { options: null, defaulted: false, summary: 'reads are open on every address (readTokens.public: true)' };
  }
  if (config.readTokens?.keys) {
    return { options: { keys: config.readTokens.keys, ...ttl }, defaulted: false, summary: `reads need a read token of one of the ${config.readTokens.keys.length} key(s) in readTokens.keys` };
  }
  if (config.readTokens || exposed.length > 0) {
    return {
      options: { keys: signers, ...ttl },
      defaulted: !config.readTokens,
      summary: `read protection on${config.readTokens ? '' : ` (the API listens beyond loopback: ${exposed.join(', ')})`}: reads need a read token (Authorization: Zone ...) signed by a key of the trust policy's signers; ` +
        'the zone CLI sends one given --key or $ZONE_READ_KEY; "readTokens": {"public": true} in the config opens reads',
    };
  }
  return { options: null, defaulted: false, summary: 'reads are open: the API listens on loopback only' };
}
