// Where sealed values sit in a blueprint, named so that the name survives reordering:
// `workloads/NAME/env/VAR` and `networks/NAME/wireguard/privateKey` (`*`: any field of
// the owner's blueprints). A sealed value is bound to one of these names (seal.ts).
import { ENV_NAME, NAME_PATTERN, type Blueprint } from './schema.ts';

const name = NAME_PATTERN.slice(1, -1);
const env = ENV_NAME.slice(1, -1);
export const SEALED_FIELD_PATTERN = `^(workloads/${name}/env/${env}|networks/${name}/wireguard/privateKey|\\*)$`;

export const envField = (workload: string, variable: string) => `workloads/${workload}/env/${variable}`;
export const wireguardKeyField = (network: string) => `networks/${network}/wireguard/privateKey`;

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
