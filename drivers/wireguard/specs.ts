// From a verified blueprint to what the network driver is asked to make real: one
// NetworkSpec per declared network, and per container the networks it joins.
import type { Blueprint } from '../../blueprints/schema.ts';
import type { NetworkSpec } from '../contract.ts';
import { networkId } from './names.ts';

export function networkSpecsOf(bp: Blueprint, node: string): NetworkSpec[] {
  return (bp.networks ?? []).map((definition) => {
    const identity = { node, owner: bp.owner, blueprint: bp.name, network: definition.name };
    return { ...identity, id: networkId(identity), definition };
  });
}

/** The networks a workload joins, each with its declared IP (for `attachContainer`). */
export function attachmentsOf(bp: Blueprint, node: string, workload: string): { spec: NetworkSpec; ip: string }[] {
  const specs = new Map(networkSpecsOf(bp, node).map((s) => [s.network, s]));
  const w = (bp.workloads ?? []).find((x) => x.name === workload);
  return (w?.networks ?? []).flatMap((a) => {
    const spec = specs.get(a.name);
    return spec ? [{ spec, ip: a.ip }] : [];
  });
}
