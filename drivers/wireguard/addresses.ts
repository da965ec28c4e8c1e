// IPv4 arithmetic of the overlay: subnets, gateways, splitting a range between nodes.
import ipaddr from 'ipaddr.js';

const toInt = (ip: ipaddr.IPv4) => ip.toByteArray().reduce((n, b) => n * 256 + b, 0);
const fromInt = (n: number) => ipaddr.IPv4.parse([24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.'));

function parseCidr(cidr: string): [ipaddr.IPv4, number] {
  if (!ipaddr.IPv4.isValidCIDR(cidr)) throw new RangeError(`"${cidr}" is not an IPv4 CIDR (example: 10.88.1.0/24)`);
  return ipaddr.IPv4.parseCIDR(cidr);
}

/** The CIDR with its host bits cleared: `10.88.1.7/24` -> `10.88.1.0/24`. */
export function normalizeCidr(cidr: string): string {
  const [, prefix] = parseCidr(cidr);
  return `${ipaddr.IPv4.networkAddressFromCIDR(cidr).toString()}/${prefix}`;
}

/** `ip route` prints host routes without `/32`. */
export function routeCidr(dst: string): string {
  return normalizeCidr(dst.includes('/') ? dst : `${dst}/32`);
}

export function prefixLength(cidr: string): number {
  return parseCidr(cidr)[1];
}

/** The address `offset` places into the subnet; RangeError past its broadcast address. */
export function addressAt(subnet: string, offset: number): string {
  const [, prefix] = parseCidr(subnet);
  if (!Number.isInteger(offset) || offset < 0 || offset > 2 ** (32 - prefix) - 2) {
    throw new RangeError(`${subnet} has no host address number ${offset}`);
  }
  return fromInt(toInt(ipaddr.IPv4.networkAddressFromCIDR(subnet)) + offset).toString();
}

/** The first host of the subnet: the node's own address in the network, containers route through it. */
export function gatewayOf(subnet: string): string {
  return addressAt(subnet, 1);
}

export function containsIp(cidr: string, ip: string): boolean {
  return ipaddr.IPv4.isValid(ip) && ipaddr.IPv4.parse(ip).match(parseCidr(cidr));
}

/** In the subnet and neither its network nor its broadcast address. */
export function isHostIn(cidr: string, ip: string): boolean {
  return containsIp(cidr, ip) && ![ipaddr.IPv4.networkAddressFromCIDR(cidr), ipaddr.IPv4.broadcastAddressFromCIDR(cidr)].some((a) => a.toString() === ip);
}

/**
 * The first `count` subnets of length `prefix` inside `range`, in order. Throws
 * RangeError when they do not fit.
 */
export function splitRange(range: string, prefix: number, count: number): string[] {
  const [, rangePrefix] = parseCidr(range);
  if (!Number.isInteger(prefix) || prefix < rangePrefix || prefix > 30) {
    throw new RangeError(`subnet prefix /${prefix} must be between /${rangePrefix} (the range) and /30`);
  }
  const available = 2 ** (prefix - rangePrefix);
  if (count > available) throw new RangeError(`${range} holds ${available} subnets of /${prefix}, ${count} needed`);
  const base = toInt(ipaddr.IPv4.networkAddressFromCIDR(range));
  const size = 2 ** (32 - prefix);
  return Array.from({ length: count }, (_, i) => `${fromInt(base + i * size).toString()}/${prefix}`);
}

export interface Route {
  /** `default`, `10.1.0.0/16` or a host (`ip route` prints no `/32`). */
  dst: string;
  dev: string;
  metric?: number;
}

/**
 * The device the main table sends `ip` out of: the longest matching prefix, the lowest
 * metric among equals (policy rules and other tables are not read). Null: no route.
 */
export function routeDevice(routes: Route[], ip: string): string | null {
  if (!ipaddr.IPv4.isValid(ip)) return null;
  let best: { prefix: number; metric: number; dev: string } | null = null;
  for (const r of routes) {
    const cidr = r.dst === 'default' ? '0.0.0.0/0' : r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    if (!ipaddr.IPv4.isValidCIDR(cidr) || !containsIp(cidr, ip)) continue;
    const prefix = prefixLength(cidr);
    const metric = r.metric ?? 0;
    if (!best || prefix > best.prefix || (prefix === best.prefix && metric < best.metric)) best = { prefix, metric, dev: r.dev };
  }
  return best?.dev ?? null;
}
