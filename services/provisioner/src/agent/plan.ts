/**
 * What the agent does with a command, as data: given what this host holds for the VM and what the
 * driver says of it now, either answer at once (the host is already where the command wants it:
 * that is what makes a redelivered or repeated command harmless) or act through the driver. Pure:
 * no I/O, no clock.
 */
import type {
  BootVm,
  DestroyVm,
  DriverName,
  MessageOf,
  RebootVm,
  ResumeVm,
  ShutDownVm,
  VmBooted,
  VmBootFailed,
  VmDestroyed,
  VmShutDown,
  VmShutdownFailed,
} from "@mikrom/contracts";
import type { BootSpec, Instance, InstanceStatus } from "../drivers/driver.ts";

export type AgentCommand =
  | MessageOf<typeof BootVm>
  | MessageOf<typeof ShutDownVm>
  | MessageOf<typeof ResumeVm>
  | MessageOf<typeof RebootVm>
  | MessageOf<typeof DestroyVm>;

/** The answers a command gets (VmLost is the agent's own finding, never an answer). */
export type Answer =
  | MessageOf<typeof VmBooted>
  | MessageOf<typeof VmBootFailed>
  | MessageOf<typeof VmShutDown>
  | MessageOf<typeof VmShutdownFailed>
  | MessageOf<typeof VmDestroyed>;

/**
 * Where a VM is on this host:
 * - `booting`: a boot was under way (a row left so by a crash is cleaned up at start);
 * - `running`: booted, with the driver's record;
 * - `stopped`: stopped on command (the record and the console are kept);
 * - `failed`: the last boot failed (the driver cleaned up);
 * - `lost`: its process ended without a stop (reported with VmLost);
 * - `destroyed`: nothing left but the row.
 */
export type HeldStatus = "booting" | "running" | "stopped" | "failed" | "lost" | "destroyed";

export interface HeldVm {
  readonly vmId: string;
  readonly status: HeldStatus;
  readonly spec: BootSpec;
  readonly instance: Instance | undefined;
  /** Version of the VM's event stream. */
  readonly version: number;
}

export type Step =
  | { readonly kind: "answer"; readonly answer: Answer; readonly status?: HeldStatus }
  /** Boot `spec`; first destroy `clear` (what an earlier boot left), stopping it gracefully when `graceful`. */
  | {
      readonly kind: "boot";
      readonly spec: BootSpec;
      readonly clear: Instance | undefined;
      readonly graceful: boolean;
    }
  | { readonly kind: "stop"; readonly instance: Instance }
  | { readonly kind: "destroy"; readonly instance: Instance | undefined };

export interface PlanContext {
  readonly hostId: string;
  readonly driver: DriverName;
}

/** The spec of a BootVm as the driver takes it (the tap is the driver config's business). */
export function bootSpecOf(data: MessageOf<typeof BootVm>["data"]): BootSpec {
  return {
    vmId: data.vmId,
    vcpuCount: data.vcpuCount,
    memoryMb: data.memoryMb,
    ipAddress: data.ipAddress,
    prefixLength: data.prefixLength,
    gateway: data.gateway,
  };
}

/**
 * @param held what the store holds for the VM (undefined: never seen here)
 * @param live the driver's status of `held.instance` (undefined when there is no record)
 */
export function plan(
  command: AgentCommand,
  held: HeldVm | undefined,
  live: InstanceStatus | undefined,
  ctx: PlanContext,
): Step {
  const vmId = command.data.vmId;
  const { hostId } = ctx;
  const here = held !== undefined && held.status !== "destroyed";
  const runs = here && held.status === "running" && live === "running" && held.instance !== undefined;
  const booted = (): Step => ({
    kind: "answer",
    answer: {
      type: "VmBooted",
      data: { vmId, hostId, driver: ctx.driver, bootMs: held?.instance?.bootMs ?? 0 },
    },
  });
  const notHere = `VM ${vmId} is not on host ${hostId}`;

  switch (command.type) {
    case "BootVm":
      if (runs) return booted();
      return { kind: "boot", spec: bootSpecOf(command.data), clear: held?.instance, graceful: false };
    case "ResumeVm":
      if (!here)
        return {
          kind: "answer",
          answer: { type: "VmBootFailed", data: { vmId, hostId, step: "prepare", reason: notHere } },
        };
      if (runs) return booted();
      return { kind: "boot", spec: held.spec, clear: held.instance, graceful: false };
    case "RebootVm":
      if (!here)
        return {
          kind: "answer",
          answer: { type: "VmBootFailed", data: { vmId, hostId, step: "prepare", reason: notHere } },
        };
      return { kind: "boot", spec: held.spec, clear: held.instance, graceful: runs };
    case "ShutDownVm":
      if (!here)
        return {
          kind: "answer",
          answer: { type: "VmShutdownFailed", data: { vmId, hostId, reason: notHere } },
        };
      if (runs) return { kind: "stop", instance: held.instance! };
      // It does not run (stopped before, lost, or a boot that failed): that is what was asked.
      return {
        kind: "answer",
        answer: { type: "VmShutDown", data: { vmId, hostId } },
        ...(held.status === "running" || held.status === "booting" ? { status: "stopped" as const } : {}),
      };
    case "DestroyVm":
      if (!here) return { kind: "answer", answer: { type: "VmDestroyed", data: { vmId, hostId } } };
      return { kind: "destroy", instance: held.instance };
  }
}

/** The status of an adopted VM after an agent restart, and whether it must be reported lost. */
export function afterRestart(
  held: HeldVm,
  live: InstanceStatus | undefined,
): { status: HeldStatus; lost: boolean; clear: boolean } {
  switch (held.status) {
    case "booting":
      // The boot was cut short with the agent: whatever it left goes; the command is redelivered.
      return { status: "failed", lost: false, clear: true };
    case "running":
      if (live === "running") return { status: "running", lost: false, clear: false };
      // Stopped on purpose (the agent died between the stop and recording it): the stop is redelivered.
      if (live === "stopped") return { status: "stopped", lost: false, clear: false };
      return { status: "lost", lost: true, clear: false };
    default:
      return { status: held.status, lost: false, clear: false };
  }
}
