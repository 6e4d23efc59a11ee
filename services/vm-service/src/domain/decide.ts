import type {
  Actor,
  CreateVm,
  DeleteVm,
  MessageOf,
  RestartVm,
  StartVm,
  StopVm,
  UpdateVm,
  VmStatus,
} from "@mikrom/contracts";
import { type Refusal, refuse } from "@mikrom/eventstore/decider";
import type { Vm, VmEvent } from "./vm.ts";

export type VmCommand =
  | MessageOf<typeof CreateVm>
  | MessageOf<typeof UpdateVm>
  | MessageOf<typeof StartVm>
  | MessageOf<typeof StopVm>
  | MessageOf<typeof RestartVm>
  | MessageOf<typeof DeleteVm>;
export type VmCommandType = VmCommand["type"];

/** What the decider needs beyond the VM itself, read by the shell before deciding. */
export interface DecideContext {
  /** VMs this user holds now (every status but deleted). */
  readonly userVmCount: number;
  readonly maxVmsPerUser: number;
  /** vCPUs and memory this user's VMs hold now, and the user's limits; a limit absent is none. */
  readonly userVcpus?: number;
  readonly maxVcpusPerUser?: number;
  readonly userMemoryMb?: number;
  readonly maxMemoryMbPerUser?: number;
  /** The VM's host is unreachable: what runs there cannot be changed until it is back. */
  readonly hostUnreachable?: boolean;
}

/** Commands that need the VM's host to answer (a delete or a rename waits for it or needs it not). */
const NEEDS_HOST: ReadonlySet<VmCommandType> = new Set(["StartVm", "StopVm", "RestartVm"]);

/**
 * From which statuses each command on an existing VM is accepted. Create is accepted only where no
 * VM exists; every command but create on an absent or deleted VM is `not_found`.
 */
export const allowedFrom: Readonly<Record<Exclude<VmCommandType, "CreateVm">, readonly VmStatus[]>> = {
  UpdateVm: ["pending", "provisioning", "starting", "running", "stopping", "stopped", "restarting", "error"],
  StartVm: ["stopped", "error"],
  StopVm: ["running"],
  RestartVm: ["running"],
  DeleteVm: ["pending", "provisioning", "starting", "running", "stopping", "stopped", "restarting", "error"],
};

function notAllowed(type: Exclude<VmCommandType, "CreateVm">, status: VmStatus): string {
  switch (type) {
    case "StopVm":
    case "RestartVm":
      return `VM is not running (current status: ${status})`;
    case "StartVm":
      return status === "running"
        ? "VM is already running"
        : `VM cannot be started (current status: ${status})`;
    case "DeleteVm":
      return "VM is already being deleted";
    case "UpdateVm":
      return `VM cannot be updated (current status: ${status})`;
  }
}

/** Another user's VM does not exist for this actor (the gateway's 404), unless the actor is a superuser. */
function visibleTo(vm: Vm, actor: Actor): boolean {
  return actor.superuser || vm.userId === actor.userId;
}

/** Why a VM of this size would take the user past their vCPU or memory quota; undefined when it fits. */
function overQuota(vcpus: number, memoryMb: number, ctx: DecideContext): string | undefined {
  const held = { vcpus: ctx.userVcpus ?? 0, memoryMb: ctx.userMemoryMb ?? 0 };
  if (ctx.maxVcpusPerUser !== undefined && held.vcpus + vcpus > ctx.maxVcpusPerUser)
    return `vCPU quota reached: your VMs hold ${held.vcpus} of ${ctx.maxVcpusPerUser} vCPUs and this one asks for ${vcpus}`;
  if (ctx.maxMemoryMbPerUser !== undefined && held.memoryMb + memoryMb > ctx.maxMemoryMbPerUser)
    return `memory quota reached: your VMs hold ${held.memoryMb} of ${ctx.maxMemoryMbPerUser} MB and this one asks for ${memoryMb} MB`;
  return undefined;
}

/** decide(command, state) → the events it causes, or why not. Pure: everything it needs comes in. */
export function decide(cmd: VmCommand, vm: Vm, ctx: DecideContext): VmEvent[] | Refusal {
  if (cmd.type === "CreateVm") {
    if (vm.status !== "absent") return refuse("conflict", `VM ${cmd.data.vmId} already exists`);
    if (ctx.userVmCount >= ctx.maxVmsPerUser)
      return refuse("limit", `VM limit reached: at most ${ctx.maxVmsPerUser} VMs per user`);
    const d = cmd.data;
    const over = overQuota(d.vcpuCount, d.memoryMb, ctx);
    if (over) return refuse("limit", over);
    return [
      {
        type: "VmCreated",
        data: {
          vmId: d.vmId,
          userId: d.actor.userId,
          name: d.name,
          description: d.description,
          vcpuCount: d.vcpuCount,
          memoryMb: d.memoryMb,
          ...(d.pool !== undefined ? { pool: d.pool } : {}),
        },
      },
    ];
  }

  const vmId = cmd.data.vmId;
  if (vm.status === "absent" || vm.status === "deleted" || !visibleTo(vm, cmd.data.actor))
    return refuse("not_found", `VM ${vmId} not found`);
  if (!allowedFrom[cmd.type].includes(vm.status)) return refuse("conflict", notAllowed(cmd.type, vm.status));
  if (ctx.hostUnreachable && NEEDS_HOST.has(cmd.type))
    return refuse(
      "conflict",
      `host ${vm.hostId} is unreachable: the VM keeps its last known status (${vm.status}) until the host is back; retry later`,
    );

  switch (cmd.type) {
    case "UpdateVm": {
      // An update that changes nothing still emits its event: the caller waits for one.
      const { name, description } = cmd.data;
      return [
        {
          type: "VmUpdated",
          data: {
            vmId,
            ...(name !== undefined ? { name } : {}),
            ...(description !== undefined ? { description } : {}),
          },
        },
      ];
    }
    case "StartVm":
      return [{ type: "VmStartRequested", data: { vmId } }];
    case "StopVm":
      return [{ type: "VmStopRequested", data: { vmId } }];
    case "RestartVm":
      return [{ type: "VmRestartRequested", data: { vmId } }];
    case "DeleteVm":
      // Nothing placed on a host: nothing to destroy, the delete completes at once.
      return vm.hostId === null
        ? [
            { type: "VmDeleteRequested", data: { vmId } },
            { type: "VmDeleted", data: { vmId } },
          ]
        : [{ type: "VmDeleteRequested", data: { vmId } }];
  }
}
