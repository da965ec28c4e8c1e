// Where sealed values sit in a blueprint, named so that the name survives reordering:
// `workloads/NAME/env/VAR` and `networks/NAME/wireguard/privateKey` (`*`: any field of
// the owner's blueprints). A sealed value is bound to one of these names (seal.ts).
// `registries/HOST[:PORT]/password` is no blueprint's: a registry password in the node's
// config, sealed with the node's own signing key as its owner.
import { ENV_NAME, NAME_PATTERN, type Blueprint } from './schema.ts';

const name = NAME_PATTERN.slice(1, -1);
const env = ENV_NAME.slice(1, -1);
/** A registry's host as dockerd names it: `registry.example`, `127.0.0.1:5000`. */
export const REGISTRY_HOST_PATTERN = '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$';
const host = REGISTRY_HOST_PATTERN.slice(1, -1);
export const SEALED_FIELD_PATTERN = `^(workloads/${name}/env/${env}|networks/${name}/wireguard/privateKey|registries/${host}/password|\\*)$`;

export const envField = (workload: string, variable: string) => `workloads/${workload}/env/${variable}`;
export const wireguardKeyField = (network: string) => `networks/${network}/wireguard/privateKey`;
export const registryPasswordField = (host: string) => `registries/${host}/password`;

/** A field of a blueprint that holds (or claims to hold, by its `sealed:` prefix) a sealed value. */
export interface SealedField {
  /** The place name a sealed value is bound to. */
  field: string;
  /** The JSON pointer of the value in the document, for errors. */
  pointer: string;
  value: string;
}

/** Every sealed value of the blueprint: env values that start with `sealed:`, and WireGuard private keys. */
export function sealedFields(bp: Blueprint): SealedField[] {
  return [
    ...(bp.workloads ?? []).flatMap((w, i) => Object.entries(w.env ?? {})
      .filter(([, value]) => value.startsWith('sealed:'))
      .map(([variable, value]) => ({ field: envField(w.name, variable), pointer: `/workloads/${i}/env/${variable}`, value }))),
    ...(bp.networks ?? []).flatMap((n, i) => (n.wireguard
      ? [{ field: wireguardKeyField(n.name), pointer: `/networks/${i}/wireguard/privateKey`, value: n.wireguard.privateKey }]
      : [])),
  ];
}
