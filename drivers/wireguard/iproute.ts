// `ip` (iproute2) as the driver uses it: commands in a network namespace given by its
// path (/var/run/netns/NAME, /proc/PID/ns/net) or the current one, JSON output checked.
import { Type, type TSchema, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { inNamespace, runCommand } from '../../lib/exec.ts';
import type { Route } from './addresses.ts';

const Link = Type.Object({
  ifname: Type.String(), flags: Type.Optional(Type.Array(Type.String())), ifalias: Type.Optional(Type.String()), mtu: Type.Optional(Type.Integer()),
});
const Address = Type.Object({
  addr_info: Type.Array(Type.Object({ family: Type.String(), local: Type.Optional(Type.String()), prefixlen: Type.Optional(Type.Integer()) })),
});
const Route = Type.Object({ dst: Type.String() });
const TableRoute = Type.Object({ dst: Type.String(), dev: Type.Optional(Type.String()), metric: Type.Optional(Type.Integer()) });

function parseJson<T extends TSchema>(schema: T, text: string, what: string): Static<T>[] {
  const value: unknown = text.trim() === '' ? [] : JSON.parse(text);
  const list = Type.Array(schema);
  if (!Value.Check(list, value)) throw new Error(`unexpected output of ${what}: ${Value.Errors(list, value).First()?.message ?? ''}`);
  return value;
}

export const namedNamespace = (name: string) => `/var/run/netns/${name}`;

/** `ip` in the network namespace at path `ns`, or in the current one when null. */
export function ip(ns: string | null, ...args: string[]): Promise<string> {
  return runCommand(inNamespace(ns, ['ip', ...args]));
}

export interface LinkInfo {
  name: string;
  up: boolean;
  /** `ip link set ... alias` (absent when none is set). */
  alias?: string;
  mtu?: number;
}

export async function readLinks(ns: string | null): Promise<LinkInfo[]> {
  const links = parseJson(Link, await ip(ns, '-j', 'link', 'show'), 'ip link show');
  return links.map((l) => ({
    name: l.ifname, up: (l.flags ?? []).includes('UP'), ...(l.ifalias !== undefined ? { alias: l.ifalias } : {}), ...(l.mtu !== undefined ? { mtu: l.mtu } : {}),
  }));
}

/** The IPv4 main table's routes that leave by a device (blackholes and the like have none). */
export async function readRouteTable(ns: string | null): Promise<Route[]> {
  const routes = parseJson(TableRoute, await ip(ns, '-j', '-4', 'route', 'show', 'table', 'main'), 'ip route show table main');
  return routes.flatMap((r) => (r.dev === undefined ? [] : [{ dst: r.dst, dev: r.dev, ...(r.metric !== undefined ? { metric: r.metric } : {}) }]));
}

/** IPv4 addresses of `dev` as CIDRs (`10.88.1.1/24`). */
export async function readAddresses(ns: string | null, dev: string): Promise<string[]> {
  const entries = parseJson(Address, await ip(ns, '-j', '-4', 'addr', 'show', 'dev', dev), 'ip addr show');
  return entries.flatMap((e) => e.addr_info.filter((a) => a.family === 'inet' && a.local).map((a) => `${a.local}/${a.prefixlen ?? 32}`));
}

export async function readRoutes(ns: string | null, dev: string): Promise<string[]> {
  return parseJson(Route, await ip(ns, '-j', '-4', 'route', 'show', 'dev', dev), 'ip route show').map((r) => r.dst);
}
