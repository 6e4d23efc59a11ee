import type { IpAllocated, IpAllocationFailed, IpReleased, MessageOf } from "@mikrom/contracts";
import { createLogger, setContext, withContext, withSpan } from "@mikrom/telemetry";
import type { HostLoad } from "../domain/hosts.ts";
import { type ProcessInput, react } from "../domain/lifecycle.ts";
import { hostLoads } from "../store/read-model.ts";
import { handleVm, type Inbound, lockScheduling, type Tx, type VmResult } from "../store/vm-store.ts";
import type { Delivery, HandlerDeps } from "./context.ts";

const log = createLogger("mikrom.vm-service.lifecycle");

export type IppoolEvent =
  | MessageOf<typeof IpAllocated>
  | MessageOf<typeof IpAllocationFailed>
  | MessageOf<typeof IpReleased>;

/** `service.vm.<operation>` for the step an input completes. */
function operationOf(input: ProcessInput): string {
  switch (input.type) {
    case "IpAllocated":
    case "IpAllocationFailed":
    case "IpReleased":
      return "allocate";
    case "VmBooted":
    case "VmBootFailed":
      return "boot";
    case "VmShutDown":
    case "VmShutdownFailed":
      return "stop";
    case "VmDestroyed":
      return "delete";
    case "VmLost":
    case "HostLost":
      return "host_lost";
    case "HostAvailable":
      return "schedule";
    case "DeadlineReached":
      return "deadline";
    case "ResendDue":
      return "resend";
  }
}

/**
 * The hosts an input needs: a placement reads them under the scheduling lock, so two VMs never share
 * a last slot; a deadline reads them to know whether the VM's host is only unreachable.
 */
async function hostsFor(tx: Tx, input: ProcessInput): Promise<HostLoad[]> {
  const placing =
    input.type === "IpAllocated" ||
    input.type === "HostAvailable" ||
    (input.type === "DeadlineReached" && input.data.step === "schedule");
  if (placing) await lockScheduling(tx);
  return placing || input.type === "DeadlineReached" ? hostLoads(tx) : [];
}

/** Feeds one input to the lifecycle for one VM, in one transaction with its effects. */
export async function driveVm(
  deps: HandlerDeps,
  vmId: string,
  input: ProcessInput,
  inbound: Inbound | null,
): Promise<VmResult> {
  const action = operationOf(input);
  return withContext({ vm_id: vmId, action }, () =>
    withSpan(`service.vm.${action}`, { "mikrom.vm.id": vmId, "mikrom.input": input.type }, async (span) => {
      const result = await handleVm(deps, {
        vmId,
        inbound,
        context: (tx) => hostsFor(tx, input),
        decide: (vm, hosts) =>
          react(input, vm, {
            hosts,
            nowMs: deps.now(),
            heartbeatTimeoutMs: deps.config.hostHeartbeatTimeoutMs,
          }),
      });
      span.setAttribute("mikrom.outcome", result.outcome);
      if (result.outcome === "accepted") {
        if (result.state.userId !== null) setContext({ user_id: String(result.state.userId) });
        const fields = { status: result.state.status };
        for (const e of result.decided.events) {
          if (e.type === "VmFailed")
            log.warn({ ...fields, step: e.data.step, error_message: e.data.errorMessage }, "VM failed");
          else log.info(fields, `${e.type} after ${input.type}`);
        }
      }
      return result;
    }),
  );
}

/** `<ns>.evt.ippool.*.*` and `<ns>.evt.provisioner.*.*`: answers to the commands this service sent. */
export function onProcessEvent(consumer: string) {
  return (deps: HandlerDeps, d: Delivery<ProcessInput>): Promise<VmResult> => {
    // An allocation answer is matched to the request it answers by its causation id.
    const answer = d.message.type === "IpAllocated" || d.message.type === "IpAllocationFailed";
    const input: ProcessInput =
      answer && d.causationId ? { ...d.message, causationId: d.causationId } : d.message;
    const vmId = (input.data as { vmId: string }).vmId;
    return driveVm(deps, vmId, input, {
      consumer,
      messageId: d.messageId,
      correlationId: d.correlationId,
      actor: null,
    });
  };
}
