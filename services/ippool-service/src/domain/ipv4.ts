/**
 * IPv4 addresses as unsigned 32-bit integers, and CIDR blocks. Pure arithmetic: no I/O, no
 * `node:net`, so the rules are the same in the decider, the tests and the benchmark.
 */

/** An IPv4 address as an unsigned 32-bit integer (0 … 2^32-1). */
export type Ipv4Number = number;

export interface Cidr {
  /** The network address (host bits zero). */
  readonly network: Ipv4Number;
  readonly prefixLength: number;
  /** The last address of the block (the broadcast address). */
  readonly broadcast: Ipv4Number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The prefix lengths a pool may have: /16 (65,534 hosts) down to /30 (2 hosts). */
export const MIN_PREFIX = 16;
export const MAX_PREFIX = 30;

// Decimal octets without leading zeros: "010" could be read as octal by other tools, so it is refused.
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function parseIpv4(text: string): Parsed<Ipv4Number> {
  const match = IPV4.exec(text);
  if (!match) return { ok: false, reason: `"${text}" is not an IPv4 address (four decimal octets 0-255)` };
  const [a, b, c, d] = match.slice(1, 5).map(Number) as [number, number, number, number];
  return { ok: true, value: ((a << 24) >>> 0) + (b << 16) + (c << 8) + d };
}

export function formatIpv4(address: Ipv4Number): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join(".");
}

/** The netmask of a prefix length, as an unsigned integer. */
export function maskOf(prefixLength: number): Ipv4Number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function cidrOf(network: Ipv4Number, prefixLength: number): Cidr {
  const base = (network & maskOf(prefixLength)) >>> 0;
  return { network: base, prefixLength, broadcast: (base + 2 ** (32 - prefixLength) - 1) >>> 0 };
}

/**
 * Parses `a.b.c.d/n` for a pool: the prefix must be within /16–/30 and the host bits zero (a
 * block written with host bits set is almost always a typo, so the reason names the network meant).
 */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf("/");
  if (slash < 0) return { ok: false, reason: `"${text}" is not in CIDR notation (a.b.c.d/prefix)` };
  const address = parseIpv4(text.slice(0, slash));
  if (!address.ok) return { ok: false, reason: `"${text}" is not a valid CIDR: ${address.reason}` };
  const prefixText = text.slice(slash + 1);
  if (!/^(3[0-2]|[12]?[0-9])$/.test(prefixText)) {
    return { ok: false, reason: `"${text}" is not a valid CIDR: the prefix length must be 0-32` };
  }
  const prefixLength = Number(prefixText);
  if (prefixLength < MIN_PREFIX || prefixLength > MAX_PREFIX) {
    return {
      ok: false,
      reason: `"${text}" has prefix /${prefixLength}; pools must be between /${MIN_PREFIX} and /${MAX_PREFIX}`,
    };
  }
  const cidr = cidrOf(address.value, prefixLength);
  if (cidr.network !== address.value) {
    return {
      ok: false,
      reason: `"${text}" has host bits set; the network is ${formatCidr(cidr)}`,
    };
  }
  return { ok: true, value: cidr };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

export function contains(cidr: Cidr, address: Ipv4Number): boolean {
  return address >= cidr.network && address <= cidr.broadcast;
}

/** Usable hosts exclude the network and broadcast addresses (every supported prefix is /30 or wider). */
export function isUsableHost(cidr: Cidr, address: Ipv4Number): boolean {
  return address > cidr.network && address < cidr.broadcast;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network <= b.broadcast && b.network <= a.broadcast;
}

/** Number of addresses from `start` to `end` inclusive (0 when reversed). */
export function rangeSize(start: Ipv4Number, end: Ipv4Number): number {
  return end >= start ? end - start + 1 : 0;
}
