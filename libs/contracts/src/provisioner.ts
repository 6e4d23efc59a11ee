import { z } from "zod";
import { HostId, Ipv4, Timestamp, VmId } from "./ids.ts";
import { command, event } from "./message.ts";
import { MemoryMb, VcpuCount } from "./vm.ts";

/**
 * Provisioner agents, one per host. Commands for a host go to `<ns>.cmd.provisioner.<hostId>.<verb>`;
 * VM facts to `<ns>.evt.provisioner.<vmId>.<Type>`, host facts to `<ns>.evt.host.<hostId>.<Type>`.
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
