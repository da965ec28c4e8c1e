// The config disk of a stand-alone node VM (the Vagrantfile's nodes): its address, its API
// on that address, one operator key trusted for every owner, and its identity made on the
// host (kept in a folder there, so the node keeps its id across `vagrant destroy` and
// `up`, and its id is known before it boots). `zone cluster up --vm` makes its own, with
// the grid's NATS routes (cli/cluster/grid.ts).
import { existsSync } from 'node:fs';
import { readSigningKey, writeSigningKey } from '../../blueprints/keys.ts';
import type { TrustPolicy } from '../../blueprints/policy.ts';
import { generateSigningKeyPair } from '../../lib/ed25519.ts';
import { API_PORT } from '../cluster/layout.ts';
import { vmIdentity } from '../cluster/vm.ts';
import { networkConf, writeConfigDisk, type NodeNetwork } from './config-disk.ts';

export interface StandaloneNode {
  network: NodeNetwork;
  /** The operator's key file; made (0600) when it does not exist yet. */
  operatorKey: string;
  /** Where the node's keys are made, or found from an earlier run. */
  identityDir: string;
}

export interface StandaloneConfig {
  id: string;
  api: string;
  operatorPublicKey: string;
}

/** Writes the node's config disk at `out`. */
export async function writeStandaloneConfigDisk(out: string, node: StandaloneNode): Promise<StandaloneConfig> {
  networkConf(node.network); // the address is checked before anything is made
  const ip = node.network.address.split('/')[0]!;
  if (!existsSync(node.operatorKey)) writeSigningKey(node.operatorKey, generateSigningKeyPair());
  const operator = readSigningKey(node.operatorKey);
  const policy: TrustPolicy = { signers: [{ key: operator.publicKey, weight: 1, label: 'operator', owners: '*' }], threshold: 1 };
  const identity = await vmIdentity(node.identityDir);
  await writeConfigDisk(out, {
    network: node.network,
    data: {
      ...identity.files,
      'trust-policy.json': JSON.stringify(policy, null, 2) + '\n',
      'config.json': JSON.stringify({ listen: `${ip}:${API_PORT}`, trustPolicy: 'trust-policy.json' }, null, 2) + '\n',
    },
  });
  return { id: identity.id, api: `http://${ip}:${API_PORT}`, operatorPublicKey: operator.publicKey };
}
