import type { VmEventType } from "./vm.ts";

/**
 * What a user asked of a VM, timed from the event that starts it to the event that ends it (both
 * recorded by the database's clock): create → running, start → running, restart → running,
 * stop → stopped, delete → deleted; a VmFailed ends any of them as a failure, and a delete asked while
 * another operation runs ends that one as superseded.
 */
export type Operation = "create" | "start" | "stop" | "restart" | "delete";
export type OperationOutcome = "success" | "failure" | "superseded";

export interface EndedOperation {
  readonly operation: Operation;
  readonly outcome: OperationOutcome;
  readonly seconds: number;
}

/** The parts of a recorded event the timing needs. */
export interface TimedEvent {
  readonly type: VmEventType;
  readonly recordedAt: Date;
}

interface Open {
  readonly operation: Operation;
  readonly since: Date;
}

const STARTS: Partial<Record<VmEventType, Operation>> = {
  VmCreated: "create",
  VmStartRequested: "start",
  VmStopRequested: "stop",
  VmRestartRequested: "restart",
  VmDeleteRequested: "delete",
};

const SUCCESS: Partial<Record<VmEventType, readonly Operation[]>> = {
  VmRunning: ["create", "start", "restart"],
  VmStopped: ["stop"],
  VmDeleted: ["delete"],
};

function step(open: Open | undefined, event: TimedEvent, ended: EndedOperation[]): Open | undefined {
  const end = (outcome: OperationOutcome): void => {
    if (!open) return;
    const seconds = Math.max(0, event.recordedAt.getTime() - open.since.getTime()) / 1000;
    ended.push({ operation: open.operation, outcome, seconds });
  };
  const starts = STARTS[event.type];
  if (starts) {
    end("superseded");
    return { operation: starts, since: event.recordedAt };
  }
  if (event.type === "VmFailed") {
    end("failure");
    return undefined;
  }
  if (open && SUCCESS[event.type]?.includes(open.operation)) {
    end("success");
    return undefined;
  }
  return open;
}

/** The operations that the newly appended events end, given the VM's history before them. */
export function endedOperations(
  history: readonly TimedEvent[],
  appended: readonly TimedEvent[],
): EndedOperation[] {
  let open: Open | undefined;
  for (const event of history) open = step(open, event, []);
  const ended: EndedOperation[] = [];
  for (const event of appended) open = step(open, event, ended);
  return ended;
}
