import type {
  AllocateIp,
  BootVm,
  DestroyVm,
  MessageOf,
  RebootVm,
  ReleaseIp,
  ResumeVm,
  ShutDownVm,
} from "@mikrom/contracts";
import { isRefusal, type Refusal } from "@mikrom/eventstore/decider";
import { type DecideContext, decide, type VmCommand } from "./decide.ts";
import { outstandingAllocation, type StepCommand, stepCommandId } from "./message-ids.ts";
import { evolve, type Step, stepOf, type Vm, type VmEvent } from "./vm.ts";

/**
 * What follows a VM's events: the command that starts each step (sent again, the same message, while
 * its answer is late), what a failed or deleted VM gives back, and the step whose deadline runs.
 */
export type ProvisionerCommand =
  | MessageOf<typeof BootVm>
  | MessageOf<typeof ShutDownVm>
  | MessageOf<typeof ResumeVm>
  | MessageOf<typeof RebootVm>
  | MessageOf<typeof DestroyVm>;
export type IppoolCommand = MessageOf<typeof AllocateIp> | MessageOf<typeof ReleaseIp>;

/**
 * A command this service sends, with where it goes and, for a step's command, its message id
 * (derived from the state, so that sending it again sends the same message).
 */
export type Outgoing = (
  | { readonly service: "ippool"; readonly command: IppoolCommand; readonly messageId?: string }
  | {
      readonly service: "provisioner";
      readonly hostId: string;
      readonly command: ProvisionerCommand;
      readonly messageId?: string;
    }
) & {
  /** Set on a step's command sent again (its count): it must reach the receiver past JetStream's duplicate window. */
  readonly resend?: number;
};

/**
 * The outcome of one input: events to append, commands to send with them (same transaction), and the
 * VM's deadline afterwards: a step (replacing any other), `null` (none), or `undefined` (unchanged).
 */
export interface Decision {
  readonly events: VmEvent[];
  readonly commands: Outgoing[];
  readonly deadline: Step | null | undefined;
}

export function ippool(command: IppoolCommand): Outgoing {
  return { service: "ippool", command };
}

/**
 * The AllocateIp the VM sends as `after` (its state once the event that starts the step is folded
 * in: the allocation is out), under the id the VM waits on an answer to.
 */
function allocate(after: Vm, vmId: string): Outgoing {
  const command: IppoolCommand = {
    type: "AllocateIp",
    data: { vmId, ...(after.pool !== null ? { pool: after.pool } : {}) },
  };
  return { service: "ippool", command, messageId: outstandingAllocation(after)! };
}
export function provisioner(hostId: string, command: ProvisionerCommand): Outgoing {
  return { service: "provisioner", hostId, command };
}

/** Everything the VM holds, given back: the address (or the one an allocation may still bring) and the host. */
function giveBack(vm: Vm, vmId: string): Outgoing[] {
  const out: Outgoing[] = [];
  if (vm.ipAddress !== null || vm.allocating) out.push(ippool({ type: "ReleaseIp", data: { vmId } }));
  if (vm.hostId !== null) out.push(provisioner(vm.hostId, { type: "DestroyVm", data: { vmId } }));
  return out;
}

/**
 * The command the step in flight waits on an answer to, with its message id: sent when the step
 * starts, and sent again, the same message, while the answer is late. None while the VM waits for a
 * host, or is settled.
 */
export function outstanding(vm: Vm): Outgoing[] {
  const step = stepOf(vm);
  if (step === null) return [];
  // A VM with a step in flight was created: it has an id.
  const vmId = vm.vmId!;
  if (step === "allocate") return [allocate(vm, vmId)];
  const hostId = vm.hostId;
  if (hostId === null) return [];
  const send = (command: ProvisionerCommand, kind: StepCommand): Outgoing[] => [
    { service: "provisioner", hostId, command, messageId: stepCommandId(vmId, vm.stepVersion, kind) },
  ];
  switch (step) {
    case "boot":
      return send(
        {
          type: "BootVm",
          data: {
            vmId,
            vcpuCount: vm.vcpuCount,
            memoryMb: vm.memoryMb,
            ipAddress: vm.ipAddress!,
            // Always set when the lifecycle places a VM; the fallbacks only cover hand-made history.
            prefixLength: vm.lease?.prefixLength ?? 24,
            gateway: vm.lease?.gateway ?? vm.ipAddress!.replace(/\.\d+$/, ".1"),
          },
        },
        "boot",
      );
    case "start":
      return send({ type: "ResumeVm", data: { vmId } }, "resume");
    case "stop":
      return send({ type: "ShutDownVm", data: { vmId } }, "shutdown");
    case "restart":
      return send({ type: "RebootVm", data: { vmId } }, "reboot");
    case "delete":
      return send({ type: "DestroyVm", data: { vmId } }, "destroy");
    case "schedule":
      return [];
  }
}

/**
 * Which commands follow one of our events, given the state just before it, and the deadline after
 * it: a step starts with its command and its deadline; a failure or a delete gives back what the VM
 * held; a settled status ends the deadline.
 */
export function follow(
  event: VmEvent,
  before: Vm,
): { commands: Outgoing[]; deadline: Step | null | undefined } {
  const vmId = event.data.vmId;
  switch (event.type) {
    case "VmUpdated":
      return { commands: [], deadline: undefined };
    case "VmDeleted":
      // The host already destroyed the VM (or never had it): only the address is left to give back.
      return { commands: giveBack({ ...before, hostId: null }, vmId), deadline: null };
    case "VmFailed":
      return { commands: giveBack(before, vmId), deadline: null };
    default: {
      const after = evolve(before, event);
      return { commands: outstanding(after), deadline: stepOf(after) };
    }
  }
}

/** Our events with everything that follows them, threading the state through. */
export function withFollowUps(events: VmEvent[], vm: Vm): Decision {
  const commands: Outgoing[] = [];
  let deadline: Step | null | undefined;
  let state = vm;
  for (const event of events) {
    const f = follow(event, state);
    commands.push(...f.commands);
    if (f.deadline !== undefined) deadline = f.deadline;
    state = evolve(state, event);
  }
  return { events, commands, deadline };
}

/** A user's command: decided, then followed by the commands it sends out. */
export function plan(cmd: VmCommand, vm: Vm, ctx: DecideContext): Decision | Refusal {
  const events = decide(cmd, vm, ctx);
  return isRefusal(events) ? events : withFollowUps(events, vm);
}
