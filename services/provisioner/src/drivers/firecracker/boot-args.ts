import type { BootSpec } from "../driver.ts";
import { guestArgs } from "../readiness.ts";

/**
 * The kernel command line for a Firecracker guest: the kernel's own `ip=` (for kernels with
 * CONFIG_IP_PNP; Debian's cloud kernel has it off) and the mikrom.* arguments the Mikrom guest's
 * /init reads.
 */
export function firecrackerBootArgs(
  spec: Pick<BootSpec, "vmId" | "ipAddress" | "prefixLength" | "gateway">,
): string {
  const ip = `ip=${spec.ipAddress}::${spec.gateway ?? ""}:${prefixToNetmask(spec.prefixLength)}::eth0:off`;
  return ["console=ttyS0", "reboot=k", "panic=1", "pci=off", ip, ...guestArgs(spec)].join(" ");
}

export function prefixToNetmask(prefix: number): string {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (mask >>> shift) & 0xff).join(".");
}
