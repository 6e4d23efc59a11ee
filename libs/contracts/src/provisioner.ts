import { z } from "zod";
import { HostId, Ipv4, Timestamp, VmId } from "./ids.ts";
import { command, event, query } from "./message.ts";
import type { Names } from "./subjects.ts";
import { MemoryMb, VcpuCount } from "./vm.ts";

/**
 * Provisioner agents, one per host. Commands for a host go to `<ns>.cmd.provisioner.<hostId>.<verb>`;
 * VM facts to `<ns>.evt.provisioner.<hostId>.<Type>`, host facts to `<ns>.evt.host.<hostId>.<Type>`,
 * heartbeats to `<ns>.beat.<hostId>` (core NATS: a heartbeat is superseded by the next, and no
 * stream or audit log should keep one for every host every ten seconds).
 * Every subject a host uses names the host, so NATS can hold each host's credentials to its own
 * subjects (deploy/src/nats-permissions.ts), and a fact's `hostId` is believed only when its
 * subject names the same host (hostOfFact).
 */
export const PROVISIONER_SERVICE = "provisioner";
export const HOST_CONTEXT = "host";

export const DriverName = z.enum(["qemu", "firecracker", "fake"]);
export type DriverName = z.infer<typeof DriverName>;

export const BootVm = command(
  "BootVm",
  1,
  z.object({
    vmId: VmId,
    vcpuCount: VcpuCount,
    memoryMb: MemoryMb,
    ipAddress: Ipv4,
    prefixLength: z.int().min(16).max(30),
    gateway: Ipv4,
  }),
);
export const ShutDownVm = command("ShutDownVm", 1, z.object({ vmId: VmId }));
/** Boot again a VM this host already holds (after a stop), with its recorded spec. */
export const ResumeVm = command("ResumeVm", 1, z.object({ vmId: VmId }));
export const RebootVm = command("RebootVm", 1, z.object({ vmId: VmId }));
/** Stop if running and remove every trace of the VM from the host. */
export const DestroyVm = command("DestroyVm", 1, z.object({ vmId: VmId }));

export const VmBooted = event(
  "VmBooted",
  1,
  z.object({ vmId: VmId, hostId: HostId, driver: DriverName, bootMs: z.number().nonnegative() }),
);
export const VmBootFailed = event(
  "VmBootFailed",
  1,
  z.object({ vmId: VmId, hostId: HostId, step: z.string(), reason: z.string() }),
);
export const VmShutDown = event("VmShutDown", 1, z.object({ vmId: VmId, hostId: HostId }));
export const VmShutdownFailed = event(
  "VmShutdownFailed",
  1,
  z.object({ vmId: VmId, hostId: HostId, reason: z.string() }),
);
export const VmDestroyed = event("VmDestroyed", 1, z.object({ vmId: VmId, hostId: HostId }));
/** The host found the VM's process gone without being told to stop it. */
export const VmLost = event("VmLost", 1, z.object({ vmId: VmId, hostId: HostId, reason: z.string() }));

export const HostRegistered = event(
  "HostRegistered",
  1,
  z.object({
    hostId: HostId,
    driver: DriverName,
    vcpus: z.int().positive(),
    memoryMb: z.int().positive(),
    startedAt: Timestamp,
  }),
);
/** On `<ns>.beat.<hostId>`; one on the events stream comes from an agent older than that, and counts the same. */
export const HostHeartbeat = event(
  "HostHeartbeat",
  1,
  z.object({ hostId: HostId, at: Timestamp, runningVms: z.int().nonnegative() }),
);
export const HostStopped = event("HostStopped", 1, z.object({ hostId: HostId, at: Timestamp }));

export const provisionerCommands = [BootVm, ShutDownVm, ResumeVm, RebootVm, DestroyVm] as const;
export const provisionerEvents = [
  VmBooted,
  VmBootFailed,
  VmShutDown,
  VmShutdownFailed,
  VmDestroyed,
  VmLost,
  HostRegistered,
  HostHeartbeat,
  HostStopped,
] as const;

/** The verb each command is sent under, `<ns>.cmd.provisioner.<hostId>.<verb>` (the agent dispatches on `Mikrom-Type`). */
export const ProvisionerVerb = {
  BootVm: "boot",
  ShutDownVm: "shutdown",
  ResumeVm: "resume",
  RebootVm: "reboot",
  DestroyVm: "destroy",
} as const;

/**
 * The last bytes of a VM's serial console, kept by the host that runs it (bounded: the host trims
 * the file). Asked on the host's own subject, `provisionerQuerySubject(names, hostId, "console")`.
 */
export const GetConsole = query(
  "console",
  z.object({
    hostId: HostId,
    vmId: VmId,
    /** Default 16 KiB. */
    maxBytes: z
      .int()
      .min(1)
      .max(1024 * 1024)
      .optional(),
  }),
  z.object({
    vmId: VmId,
    hostId: HostId,
    /** Where the VM is on the host (`lost`: its process ended without a stop). */
    status: z.enum(["booting", "running", "stopped", "failed", "lost"]),
    output: z.string(),
  }),
);

/**
 * A provisioner's queries go to the host that holds the data: `<ns>.qry.provisioner.<hostId>.<name>`
 * (the same shape as its commands), answered by that host's agent alone.
 */
export function provisionerQuerySubject(names: Names, hostId: string, name: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`query "${name}" is not a valid subject token`);
  // names.query checks the host id as a subject token.
  return `${names.query(PROVISIONER_SERVICE, hostId)}.${name}`;
}

export const provisionerQueries = [GetConsole] as const;

/**
 * The host a provisioner or host fact speaks for, when its subject and its payload agree; null when
 * they differ, which only a host publishing about another host can cause.
 */
export function hostOfFact(names: Names, subject: string, data: { hostId: string }): string | null {
  const parts = names.eventParts(subject);
  if (!parts || (parts.context !== PROVISIONER_SERVICE && parts.context !== HOST_CONTEXT)) return null;
  return parts.entityId === data.hostId ? data.hostId : null;
}
