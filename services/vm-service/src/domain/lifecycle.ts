import type {
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
  MessageOf,
  VmBooted,
  VmBootFailed,
  VmDestroyed,
  VmLost,
  VmShutDown,
  VmShutdownFailed,
} from "@mikrom/contracts";
import { type HostLoad, isUnreachable, noRoomMessage, pickHost } from "./hosts.ts";
import { outstandingAllocation } from "./message-ids.ts";
import { type Decision, ippool, outstanding, provisioner, withFollowUps } from "./outgoing.ts";
import { awaitingHost, type Step, stepOf, type Vm } from "./vm.ts";

/**
 * The process that drives every VM operation to a final state: which command follows each VM event,
 * which VM event follows each answer from the IP pool or a provisioner, the deadline of every step,
 * and the compensation that gives back what a failed operation took.
 */

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
  | {
      readonly type: "DeadlineReached";
      readonly data: {
        readonly step: Step;
        readonly timeoutMs: number;
        /**
         * The step's receiver has not taken the commands sent to it yet (its work queue holds them):
         * it is away or behind, so the answer is not late, it is not due yet.
         */
        readonly receiverBehind?: boolean;
      };
    }
  /** The step's answer is late: its command may have been lost on the way, send it again. */
  | { readonly type: "ResendDue"; readonly data: { readonly step: Step; readonly attempt: number } };

export interface ReactContext {
  /** The host registry, for a placement or a deadline (empty for other inputs). */
  readonly hosts: readonly HostLoad[];
  readonly nowMs: number;
  readonly heartbeatTimeoutMs: number;
}

const NOTHING: Decision = Object.freeze({ events: [], commands: [], deadline: undefined });

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
  // Every step that reaches here but allocate (boot, start, stop, restart) waits on the VM's host.
  const who = step === "allocate" ? "the IP pool service" : `provisioner host ${vm.hostId}`;
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
  // Nothing to drive for a VM this service never created (only VmCreated gives it an id).
  if (vm.vmId === null) return NOTHING;
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
      // A VM in error matches no host: its VmFailed gave the host back.
      if (vm.hostId !== hostId) return NOTHING;
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
      // The IP pool (say) is down or its queue is long: its command waits there and is taken when it
      // is back. Failing now would fail every VM created during an outage longer than the deadline.
      if (input.data.receiverBehind) return { ...NOTHING, deadline: step };
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
      if (step === "delete") {
        // A delete answered 202 is a promise kept: past its deadline the VM is gone all the same. Its
        // address is given back and its destroy sent again, the same message: the host takes it from
        // its queue whenever it is back (a VM left in `error` would ignore that late answer).
        const release = ippool({ type: "ReleaseIp", data: { vmId: vm.vmId! } });
        return {
          events: [{ type: "VmDeleted", data: { vmId: vm.vmId! } }],
          commands: [release, ...outstanding(vm)],
          deadline: null,
        };
      }
      return failed(vm, step, timeoutMessage(vm, step, timeoutMs));
    }
  }
}
