/**
 * The guest's /init (guest/init.sh) reports on the console:
 *   MIKROM-READY vm=<id> ip=<address/prefix as eth0 holds it>
 *   MIKROM-FAILED vm=<id> step=<step> reason=<text>
 * Kernel messages may share the line, so the marker is searched anywhere in it.
 */
export const READY_MARKER = "MIKROM-READY";

export type GuestReport =
  | { kind: "ready"; vmId: string; ip: string }
  | { kind: "failed"; vmId: string; step: string; reason: string };

const READY = /MIKROM-READY vm=(\S+) ip=(\S+)/;
const FAILED = /MIKROM-FAILED vm=(\S+) step=(\S+) reason=(.*)$/;

export function parseGuestReport(line: string): GuestReport | undefined {
  const ready = READY.exec(line);
  if (ready) return { kind: "ready", vmId: ready[1]!, ip: ready[2]! };
  const failed = FAILED.exec(line);
  if (failed) return { kind: "failed", vmId: failed[1]!, step: failed[2]!, reason: failed[3]!.trim() };
  return undefined;
}

/** The guest's kernel command line arguments that /init reads. */
export function guestArgs(spec: {
  vmId: string;
  ipAddress: string;
  prefixLength: number;
  gateway?: string | undefined;
}): string[] {
  const args = [`mikrom.vm=${spec.vmId}`, `mikrom.ip=${spec.ipAddress}/${spec.prefixLength}`];
  if (spec.gateway) args.push(`mikrom.gw=${spec.gateway}`);
  return args;
}
