import { type Cidr, formatCidr, formatIpv4, type Parsed, parseCidr } from "./ipv4.ts";

export interface SuggestedRange {
  cidr: string;
  network: string;
  prefixLength: number;
  netmask: string;
  firstUsable: string;
  lastUsable: string;
  broadcast: string;
  /** Usable hosts: every address but the network and broadcast ones. */
  totalHosts: number;
  /** The first usable address, by convention the gateway. */
  suggestedGateway: string;
  suggestedStart: string;
  suggestedEnd: string;
  /** Addresses between the suggested start and end, inclusive. */
  suggestedSize: number;
}

/**
 * The layout of a CIDR block and a range to offer: the gateway takes the first usable address and
 * the range is every usable address after it (172.16.0.0/24 → gateway .1, range .2–.254, 253 addresses).
 */
export function suggestRange(cidrText: string): Parsed<SuggestedRange> {
  const parsed = parseCidr(cidrText);
  if (!parsed.ok) return parsed;
  return { ok: true, value: layoutOf(parsed.value) };
}

export function layoutOf(cidr: Cidr): SuggestedRange {
  const first = cidr.network + 1;
  const last = cidr.broadcast - 1;
  return {
    cidr: formatCidr(cidr),
    network: formatIpv4(cidr.network),
    prefixLength: cidr.prefixLength,
    netmask: formatIpv4((0xffffffff << (32 - cidr.prefixLength)) >>> 0),
    firstUsable: formatIpv4(first),
    lastUsable: formatIpv4(last),
    broadcast: formatIpv4(cidr.broadcast),
    totalHosts: last - first + 1,
    suggestedGateway: formatIpv4(first),
    suggestedStart: formatIpv4(first + 1),
    suggestedEnd: formatIpv4(last),
    suggestedSize: last - first,
  };
}
