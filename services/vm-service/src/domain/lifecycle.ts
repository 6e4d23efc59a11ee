import type {
  AllocateIp,
  BootVm,
  DestroyVm,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
  MessageOf,
  RebootVm,
  ReleaseIp,
  ResumeVm,
  ShutDownVm,
  VmBooted,
  VmBootFailed,
  VmDestroyed,
  VmLost,
  VmShutDown,
  VmShutdownFailed,
} from "@mikrom/contracts";
import { type DecideContext, decide, isRefusal, type Refusal, type VmCommand } from "./decide.ts";
import { type HostLoad, isUnreachable, noRoomMessage, pickHost } from "./hosts.ts";
import {
  awaitingHost,
  evolve,
  outstandingAllocation,
  type Step,
  type StepCommand,
  stepCommandId,
  stepOf,
  type Vm,
  type VmEvent,
} from "./vm.ts";

/**
 * The process that drives every VM operation to a final state: which command follows each VM event,
 * which VM event follows each answer from the IP pool or a provisioner, the deadline of every step,
 * and the compensation that gives back what a failed operation took.
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
 * The IP pool's answer to an AllocateIp, with its causation id: the message id of the AllocateIp it
 * answers (absent when the sender set none).
 */
export type AllocationAnswer = (MessageOf<typeof IpAllocated> | MessageOf<typeof IpAllocationFailed>) & {
  readonly causationId?: string;
};

/** What the process heard: another service's event, a lost host, or a step's deadline. */
export type ProcessInput =
  | AllocationAnswer
  | MessageOf<typeof IpReleased>
  | MessageOf<typeof VmBooted>
  | MessageOf<typeof VmBootFailed>
  | MessageOf<typeof VmShutDown>
  | MessageOf<typeof VmShutdownFailed>
  | MessageOf<typeof VmDestroyed>
  | MessageOf<typeof VmLost>
  | { readonly type: "HostLost"; readonly data: { readonly hostId: string; readonly reason: string } }
  /** A host registered or heartbeated: a VM waiting for one may now fit. */
  | { readonly type: "HostAvailable"; readonly data: { readonly hostId: string } }
  | { readonly type: "DeadlineReached"; readonly data: { readonly step: Step; readonly timeoutMs: number } }
  /** The step's answer is late: its command may have been lost on the way, send it again. */
  | { readonly type: "ResendDue"; readonly data: { readonly step: Step; readonly attempt: number } };

/**
 * The outcome of one input: events to append, commands to send with them (same transaction), and the
 * VM's deadline afterwards: a step (replacing any other), `null` (none), or `undefined` (unchanged).
 */
export interface Decision {
  readonly events: VmEvent[];
  readonly commands: Outgoing[];
  readonly deadline: Step | null | undefined;
}

export interface ReactContext {
  /** The host registry, for a placement or a deadline (empty for other inputs). */
  readonly hosts: readonly HostLoad[];
  readonly nowMs: number;
  readonly heartbeatTimeoutMs: number;
}

const NOTHING: Decision = Object.freeze({ events: [], commands: [], deadline: undefined });

function ippool(command: IppoolCommand): Outgoing {
  return { service: "ippool", command };
}

/** The AllocateIp the VM sends as `after` (its state once the event that starts the step is folded in). */
function allocate(after: Vm, vmId: string): Outgoing {
  const messageId = outstandingAllocation(after);
  const command: IppoolCommand = {
    type: "AllocateIp",
    data: { vmId, ...(after.pool !== null ? { pool: after.pool } : {}) },
  };
  return messageId !== null ? { service: "ippool", command, messageId } : { service: "ippool", command };
}
function provisioner(hostId: string, command: ProvisionerCommand): Outgoing {
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
  const vmId = vm.vmId;
  const step = stepOf(vm);
  if (vmId === null || step === null) return [];
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
export function withFollowUps(events: VmEvent[], vm: Vm, extra: Outgoing[] = []): Decision {
  const commands: Outgoing[] = [...extra];
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

function failed(vm: Vm, step: string, errorMessage: string): Decision {
  const vmId = vm.vmId!;
  return withFollowUps([{ type: "VmFailed", data: { vmId, step, errorMessage } }], vm);
}

/**
 * The VM placed on the live host with the most room, booting with the address it holds; or, when no
 * host has room, the address kept while the VM waits for one (the schedule deadline bounds the wait).
 */
function place(
  vm: Vm,
  lease: { address: string; prefixLength?: number; gateway?: string },
  ctx: ReactContext,
): Decision | null {
  const vmId = vm.vmId!;
  const need = { vcpuCount: vm.vcpuCount, memoryMb: vm.memoryMb };
  const hostId = pickHost(ctx.hosts, need, ctx.nowMs, ctx.heartbeatTimeoutMs);
  if (hostId === null) return null;
  return withFollowUps(
    [
      {
        type: "VmProvisioning",
        data: {
          vmId,
          ipAddress: lease.address,
          hostId,
          ...(lease.prefixLength !== undefined ? { prefixLength: lease.prefixLength } : {}),
          ...(lease.gateway !== undefined ? { gateway: lease.gateway } : {}),
        },
      },
    ],
    vm,
  );
}

/** The lease a VM waiting for a host holds, in the shape place() takes. */
function heldLease(vm: Vm): { address: string; prefixLength?: number; gateway?: string } {
  return { address: vm.ipAddress!, ...vm.lease };
}

function timeoutMessage(vm: Vm, step: Step, timeoutMs: number): string {
  const who = step === "allocate" ? "the IP pool service" : `provisioner host ${vm.hostId ?? "(none)"}`;
  return `${step} timed out: no answer from ${who} within ${timeoutMs} ms`;
}

/** True when the VM waits on a boot (first boot, resume or reboot) from this host. */
function awaitingBootFrom(vm: Vm, hostId: string): boolean {
  return (
    vm.hostId === hostId &&
    (vm.status === "provisioning" ||
      vm.status === "restarting" ||
      (vm.status === "starting" && !vm.allocating))
  );
}

/**
 * True when the answer is to the AllocateIp the VM waits on. An answer without a causation id cannot
 * be told apart and is taken as the answer (the IP pool always sets it; hand-played answers may not).
 */
function answersOutstanding(vm: Vm, answer: AllocationAnswer): boolean {
  const outstanding = outstandingAllocation(vm);
  return outstanding !== null && (answer.causationId === undefined || answer.causationId === outstanding);
}

/** The process's reaction to what it heard, given the VM it concerns. Late and duplicate news is handled here too. */
export function react(input: ProcessInput, vm: Vm, ctx: ReactContext): Decision {
  // Nothing to drive for a VM this service never created.
  if (vm.status === "absent" || vm.vmId === null) return NOTHING;
  const vmId = vm.vmId;
  switch (input.type) {
    case "IpAllocated": {
      const lease = input.data;
      if (answersOutstanding(vm, input)) {
        const placed = place(vm, lease, ctx);
        if (placed) return placed;
        // No live host with room yet (the system is starting, or a host is briefly away): keep the
        // address and wait for one until the schedule deadline rather than failing at once.
        return withFollowUps(
          [
            {
              type: "VmAwaitingHost",
              data: {
                vmId,
                ipAddress: lease.address,
                prefixLength: lease.prefixLength,
                gateway: lease.gateway,
              },
            },
          ],
          vm,
        );
      }
      // A stale answer (to an earlier AllocateIp) while a newer one is out: that attempt ended with a
      // ReleaseIp, and the pool holds at most one address per VM and answers the newer request with
      // it. Release is by VM id, so releasing now would give back the address the newer request gets.
      if (vm.allocating) return NOTHING;
      // A late answer for a VM that holds nothing any more (failed or deleted meanwhile): give it back.
      // Release is by VM id, so it is only safe while the VM holds no other address.
      if (vm.ipAddress === null)
        return { ...NOTHING, commands: [ippool({ type: "ReleaseIp", data: { vmId } })] };
      return NOTHING;
    }
    case "IpAllocationFailed":
      // An earlier request's failure says nothing about the one out now.
      if (!answersOutstanding(vm, input)) return NOTHING;
      return failed(vm, "allocate", `IP allocation failed: ${input.data.reason} (pool ${input.data.pool})`);
    case "IpReleased":
      return NOTHING;
    case "VmBooted": {
      const { hostId } = input.data;
      if (awaitingBootFrom(vm, hostId))
        return withFollowUps([{ type: "VmRunning", data: { vmId, hostId, ipAddress: vm.ipAddress! } }], vm);
      // A duplicate, or the destroy is already on its way to that host.
      if (vm.hostId === hostId) return NOTHING;
      // A boot on a host the VM no longer holds (it failed, was deleted or moved): destroy it there.
      return { ...NOTHING, commands: [provisioner(hostId, { type: "DestroyVm", data: { vmId } })] };
    }
    case "VmBootFailed": {
      const { hostId, step, reason } = input.data;
      if (!awaitingBootFrom(vm, hostId)) return NOTHING;
      const op = vm.status === "provisioning" ? "boot" : vm.status === "restarting" ? "restart" : "start";
      return failed(vm, op, `${op} failed on host ${hostId} at ${step}: ${reason}`);
    }
    case "VmShutDown":
      if (vm.status !== "stopping" || vm.hostId !== input.data.hostId) return NOTHING;
      return withFollowUps([{ type: "VmStopped", data: { vmId } }], vm);
    case "VmShutdownFailed":
      if (vm.status !== "stopping" || vm.hostId !== input.data.hostId) return NOTHING;
      return failed(vm, "stop", `stop failed on host ${input.data.hostId}: ${input.data.reason}`);
    case "VmDestroyed":
      if (vm.status !== "deleting" || vm.hostId !== input.data.hostId) return NOTHING;
      return withFollowUps([{ type: "VmDeleted", data: { vmId } }], vm);
    case "VmLost":
    case "HostLost": {
      const { hostId, reason } = input.data;
      if (vm.hostId !== hostId || vm.status === "error") return NOTHING;
      // A stopped VM has no process to lose; only the host going away matters to it.
      if (input.type === "VmLost" && vm.status === "stopped") return NOTHING;
      // A VM being deleted whose host is gone is deleted: there is nothing left to destroy.
      if (vm.status === "deleting") return withFollowUps([{ type: "VmDeleted", data: { vmId } }], vm);
      return input.type === "HostLost"
        ? failed(vm, "host", `host lost: ${reason}`)
        : failed(vm, "run", `VM lost on host ${hostId}: ${reason}`);
    }
    case "HostAvailable":
      if (!awaitingHost(vm)) return NOTHING;
      return place(vm, heldLease(vm), ctx) ?? NOTHING;
    case "ResendDue":
      // Sent again under the id it first went with: a receiver that handled it drops it (and answers
      // again); one that never got it (a NATS crash lost it) acts now.
      if (stepOf(vm) !== input.data.step) return NOTHING;
      return { ...NOTHING, commands: outstanding(vm).map((c) => ({ ...c, resend: input.data.attempt })) };
    case "DeadlineReached": {
      const { step, timeoutMs } = input.data;
      // A deadline of a step already answered is stale: the table row raced the answer.
      if (stepOf(vm) !== step) return { ...NOTHING, deadline: undefined };
      // Its host is unreachable, not gone: the step waits for it (a new deadline), and the VM is
      // failed only if the host is declared lost.
      if (isUnreachable(ctx.hosts, vm.hostId)) return { ...NOTHING, deadline: step };
      if (step === "schedule") {
        // Room may have come back without a host event (another VM gave its capacity back): one last look.
        const placed = place(vm, heldLease(vm), ctx);
        if (placed) return placed;
        const need = { vcpuCount: vm.vcpuCount, memoryMb: vm.memoryMb };
        return failed(
          vm,
          "schedule",
          `schedule timed out: no host for the VM within ${timeoutMs} ms: ${noRoomMessage(ctx.hosts, need, ctx.nowMs, ctx.heartbeatTimeoutMs)}`,
        );
      }
      return failed(vm, step, timeoutMessage(vm, step, timeoutMs));
    }
  }
}
