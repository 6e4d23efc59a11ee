import type { Pool, Vm } from "./api-types.ts";

/**
 * The addresses of a pool in use, from the VMs that hold them. The API has no allocations route;
 * every VM's address comes from one pool's range, and ranges do not overlap.
 */
export function allocationsOf(pool: Pick<Pool, "start_ip" | "end_ip">, vms: readonly Vm[]): Vm[] {
  return vms
    .filter((v) => v.ip_address !== null && inRange(v.ip_address, pool.start_ip, pool.end_ip))
    .sort((a, b) => (ipv4(a.ip_address!) ?? 0) - (ipv4(b.ip_address!) ?? 0));
}

/** Whether an IPv4 address lies in a pool's range (both ends included). */
export function inRange(address: string, start: string, end: string): boolean {
  const n = ipv4(address);
  const a = ipv4(start);
  const b = ipv4(end);
  return n !== null && a !== null && b !== null && n >= a && n <= b;
}

function ipv4(address: string): number | null {
  const parts = address.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    const octet = Number(p);
    if (!/^\d{1,3}$/.test(p) || octet > 255) return null;
    n = n * 256 + octet;
  }
  return n;
}
