import {
  type Cidr,
  contains,
  formatCidr,
  formatIpv4,
  isUsableHost,
  overlaps,
  parseCidr,
  parseIpv4,
} from "./ipv4.ts";

/** One reason a pool definition is refused, tied to the field a client should fix. */
export interface PoolIssue {
  field: "name" | "cidr" | "gateway" | "rangeStart" | "rangeEnd";
  message: string;
}

export interface PoolLayout {
  name: string;
  cidr: string;
  gateway: string;
  rangeStart: string;
  rangeEnd: string;
}

/** A live pool the new definition must not collide with. */
export interface ExistingPool {
  poolId: string;
  name: string;
  cidr: string;
}

export type PoolValidation =
  | { ok: true; normalized: PoolLayout; cidr: Cidr; start: number; end: number }
  | { ok: false; issues: PoolIssue[] };

/**
 * Checks a pool definition and says every reason it is wrong at once (a client fixes them in one
 * round): malformed CIDR, gateway outside the network or inside the range, range outside the
 * usable hosts or reversed, a name in use, a network that overlaps another pool's.
 */
export function validatePool(def: PoolLayout, others: readonly ExistingPool[]): PoolValidation {
  const issues: PoolIssue[] = [];
  const cidr = parseCidr(def.cidr);
  const gateway = parseIpv4(def.gateway);
  const start = parseIpv4(def.rangeStart);
  const end = parseIpv4(def.rangeEnd);

  if (!cidr.ok) issues.push({ field: "cidr", message: cidr.reason });
  if (!gateway.ok) issues.push({ field: "gateway", message: gateway.reason });
  if (!start.ok) issues.push({ field: "rangeStart", message: start.reason });
  if (!end.ok) issues.push({ field: "rangeEnd", message: end.reason });

  const taken = others.find((p) => p.name === def.name);
  if (taken) issues.push({ field: "name", message: `a pool named "${def.name}" exists (${taken.poolId})` });

  if (cidr.ok) {
    const net = cidr.value;
    const shown = formatCidr(net);
    if (gateway.ok) {
      if (!contains(net, gateway.value)) {
        issues.push({ field: "gateway", message: `gateway ${def.gateway} is outside the network ${shown}` });
      } else if (!isUsableHost(net, gateway.value)) {
        const which = gateway.value === net.network ? "network" : "broadcast";
        issues.push({
          field: "gateway",
          message: `gateway ${def.gateway} is the ${which} address of ${shown}`,
        });
      }
    }
    for (const [field, text, parsed] of [
      ["rangeStart", def.rangeStart, start],
      ["rangeEnd", def.rangeEnd, end],
    ] as const) {
      if (parsed.ok && !isUsableHost(net, parsed.value)) {
        issues.push({
          field,
          message: `${text} is outside the usable hosts of ${shown} (${formatIpv4(net.network + 1)}–${formatIpv4(net.broadcast - 1)})`,
        });
      }
    }
    for (const other of others) {
      const theirs = parseCidr(other.cidr);
      if (theirs.ok && overlaps(net, theirs.value)) {
        issues.push({
          field: "cidr",
          message: `${shown} overlaps pool "${other.name}" (${formatCidr(theirs.value)})`,
        });
      }
    }
  }
  if (start.ok && end.ok && start.value > end.value) {
    issues.push({
      field: "rangeEnd",
      message: `range is reversed: ${def.rangeEnd} is before ${def.rangeStart}`,
    });
  }
  if (gateway.ok && start.ok && end.ok && gateway.value >= start.value && gateway.value <= end.value) {
    issues.push({
      field: "gateway",
      message: `gateway ${def.gateway} is inside the range ${def.rangeStart}–${def.rangeEnd}`,
    });
  }

  if (issues.length > 0 || !cidr.ok || !start.ok || !end.ok) return { ok: false, issues };
  return {
    ok: true,
    normalized: { ...def, cidr: formatCidr(cidr.value) },
    cidr: cidr.value,
    start: start.value,
    end: end.value,
  };
}
