/**
 * The message ids a VM's commands are sent under. Derived from the VM's state, never minted, so a
 * command sent again is the same message (its receiver drops the duplicate) and an answer is matched
 * to the request it answers by its causation id.
 */
import type { Vm } from "./vm.ts";

/**
 * The message id of a VM's n-th AllocateIp. Deterministic, so the state knows which request is
 * outstanding: the IP pool's answer carries it as its causation id. A UUID because the outbox keeps
 * message ids as one: version 8 (a layout of our own, never equal to a minted random v4 id), the VM id's
 * 8 hex digits, then the attempt number.
 */
export function allocationRequestId(vmId: string, n: number): string {
  return `${vmId.slice(-8)}-a110-8000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** The command a step sends, as it is named in its message id. */
export type StepCommand = "boot" | "resume" | "reboot" | "shutdown" | "destroy";
const STEP_COMMAND_CODE: Readonly<Record<StepCommand, string>> = {
  boot: "b007",
  resume: "2e50",
  reboot: "2eb0",
  shutdown: "5d00",
  destroy: "de57",
};

/**
 * The message id of the command the step started at `version` sends: the same every time it is
 * derived, so the command sent again (when its answer is late) is a duplicate its receiver drops.
 * The layout of allocationRequestId, with the command in the second group.
 */
export function stepCommandId(vmId: string, version: number, command: StepCommand): string {
  return `${vmId.slice(-8)}-${STEP_COMMAND_CODE[command]}-8000-8000-${version.toString(16).padStart(12, "0")}`;
}

/** The id of the AllocateIp the VM waits on an answer to; null when none is out. */
export function outstandingAllocation(vm: Vm): string | null {
  return vm.allocating && vm.vmId !== null ? allocationRequestId(vm.vmId, vm.allocations) : null;
}
