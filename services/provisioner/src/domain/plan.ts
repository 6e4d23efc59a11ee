/**
 * What the agent does with a command, as data: given what this host's store holds for the VM and
 * what the driver has for it now, either answer at once (the host is already where the command wants
 * it: that is what makes a repeated or redelivered command harmless) or act through the driver.
 * The driver's view wins over the store's: the agent may have died between a driver call and its
 * record, so a VM found running as asked is running, whatever the row says. Pure: no I/O, no clock.
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

/** A command whose driver work was under way: stored before the driver is called, cleared with the answer. */
export type Operation = AgentCommand["type"];

/** The answers a command gets (VmLost is the agent's own finding, never an answer). */
export type Answer =
  | MessageOf<typeof VmBooted>
  | MessageOf<typeof VmBootFailed>
  | MessageOf<typeof VmShutDown>
  | MessageOf<typeof VmShutdownFailed>
  | MessageOf<typeof VmDestroyed>;

/**
 * Where a VM is on this host:
 * - `booting`: a boot (or the clearing before it) was under way;
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
  /**
   * The command whose driver work was under way when the row was last written, if any: a process
   * that ended meanwhile was ended by it (a stop, a destroy, a reboot), not lost.
   */
  readonly operation: Operation | undefined;
}

/** What the driver has for the VM now (Driver.find, else the stored record's status). */
export interface Found {
  readonly status: InstanceStatus;
  readonly instance: Instance;
}

/** The row a step leaves (the operation marker is cleared with it). */
export interface Change {
  readonly status: HeldStatus;
  readonly spec: BootSpec;
  /** `null` forgets the record (the driver removed everything). */
  readonly instance: Instance | null;
}

export type Step =
  /** Answer now; `change` is the row to write with it (none for a VM this host does not hold). */
  | { readonly kind: "answer"; readonly answer: Answer; readonly change?: Change }
  /** Boot `spec`; first destroy `clear` (what the driver has for the VM), stopping it gracefully when `graceful`. */
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
  /** The tap this host gives the VM (the driver creates it on its bridge), if it gives one. */
  readonly tap?: string | undefined;
}

/** The spec of a BootVm as the driver takes it, with the host's tap when it gives one. */
export function bootSpecOf(data: MessageOf<typeof BootVm>["data"], tap?: string): BootSpec {
  return {
    vmId: data.vmId,
    vcpuCount: data.vcpuCount,
    memoryMb: data.memoryMb,
    ipAddress: data.ipAddress,
    prefixLength: data.prefixLength,
    gateway: data.gateway,
    ...(tap ? { tap } : {}),
  };
}

/**
 * The driver's VM when it runs as `spec` asks: its process lives, its guest reported ready (a
 * record without `bootMs` is a boot cut short), with the address asked for.
 */
export function runningAsAsked(found: Found | undefined, spec: BootSpec): Instance | undefined {
  const ok =
    found?.status === "running" &&
    found.instance.bootMs !== undefined &&
    found.instance.ipAddress === spec.ipAddress &&
    found.instance.prefixLength === spec.prefixLength;
  return ok ? found.instance : undefined;
}

/**
 * @param held what the store holds for the VM (undefined: never seen here)
 * @param found what the driver has for the VM now (undefined: nothing at all)
 */
export function plan(
  command: AgentCommand,
  held: HeldVm | undefined,
  found: Found | undefined,
  ctx: PlanContext,
): Step {
  const vmId = command.data.vmId;
  const { hostId } = ctx;
  const here = held !== undefined && held.status !== "destroyed";
  const withTap = (spec: BootSpec): BootSpec => (ctx.tap && !spec.tap ? { ...spec, tap: ctx.tap } : spec);
  const booted = (spec: BootSpec, instance: Instance): Step => ({
    kind: "answer",
    answer: { type: "VmBooted", data: { vmId, hostId, driver: ctx.driver, bootMs: instance.bootMs ?? 0 } },
    change: { status: "running", spec, instance },
  });
  const notHere = `VM ${vmId} is not on host ${hostId}`;
  const bootFailed = (): Step => ({
    kind: "answer",
    answer: { type: "VmBootFailed", data: { vmId, hostId, step: "prepare", reason: notHere } },
  });

  switch (command.type) {
    case "BootVm": {
      const spec = bootSpecOf(command.data, ctx.tap);
      // Already running as asked (booted before, or by an agent that died before recording it).
      const running = runningAsAsked(found, spec);
      if (running) return booted(spec, running);
      return { kind: "boot", spec, clear: found?.instance, graceful: false };
    }
    case "ResumeVm": {
      if (!here) return bootFailed();
      const spec = withTap(held.spec);
      const running = runningAsAsked(found, spec);
      if (running) return booted(spec, running);
      return { kind: "boot", spec, clear: found?.instance, graceful: false };
    }
    case "RebootVm": {
      if (!here) return bootFailed();
      const spec = withTap(held.spec);
      // A reboot acts even on a VM that runs: a redelivered one reboots again, and the VM still runs.
      return {
        kind: "boot",
        spec,
        clear: found?.instance,
        graceful: runningAsAsked(found, spec) !== undefined,
      };
    }
    case "ShutDownVm": {
      if (!here)
        return {
          kind: "answer",
          answer: { type: "VmShutdownFailed", data: { vmId, hostId, reason: notHere } },
        };
      if (found?.status === "running") return { kind: "stop", instance: found.instance };
      // It does not run (stopped before, lost, or a boot that failed): that is what was asked.
      const status = held.status === "running" || held.status === "booting" ? "stopped" : held.status;
      return {
        kind: "answer",
        answer: { type: "VmShutDown", data: { vmId, hostId } },
        change: { status, spec: held.spec, instance: found?.instance ?? held.instance ?? null },
      };
    }
    case "DestroyVm":
      // Whatever the driver has goes, even for a VM the store says is destroyed (a destroy cut short).
      if (!here && !found) return { kind: "answer", answer: { type: "VmDestroyed", data: { vmId, hostId } } };
      return { kind: "destroy", instance: found?.instance ?? held?.instance };
  }
}

/** What became of a VM while no command acted on it, and what to do about it. */
export interface Settled {
  readonly status: HeldStatus;
  readonly instance: Instance | null;
  /** Report VmLost: its process ended without a stop. */
  readonly lost: boolean;
  /** Destroy this first: what a boot cut short left. */
  readonly clear: Instance | undefined;
}

/**
 * What a VM in the store has become, by what the driver has for it: at start (after the agent's own
 * end, which may have cut any step short) and in the watch. A VM found running as its spec asks is
 * running whatever the row says (adopted); a boot cut short is cleared and `failed` (its command is
 * delivered again); a running VM whose process ended is lost, unless a command of ours was ending it.
 */
export function settle(held: HeldVm, found: Found | undefined): Settled {
  const kept = found?.instance ?? held.instance ?? null;
  const as = (status: HeldStatus, lost = false): Settled => ({
    status,
    instance: kept,
    lost,
    clear: undefined,
  });
  const running = runningAsAsked(found, held.spec);
  if (running) return { status: "running", instance: running, lost: false, clear: undefined };
  switch (held.status) {
    case "booting":
      // Cut short before the guest was ready (or never spawned): what it left goes.
      return { status: "failed", instance: null, lost: false, clear: found?.instance };
    case "running":
      if (found?.status === "running") return as("running");
      // Stopped on purpose (the agent died between the stop and recording it): the stop is redelivered.
      if (found?.status === "stopped") return as("stopped");
      // Ended by a stop, destroy or reboot under way: its command is redelivered and finishes.
      if (held.operation !== undefined) return as("stopped");
      return as("lost", true);
    default:
      return as(held.status);
  }
}
