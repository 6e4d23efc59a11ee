import { createLogger, withContext, withSpan } from "@mikrom/telemetry";
import type { Config } from "../config.ts";
import type { DecideContext, VmCommand } from "../domain/decide.ts";
import { plan } from "../domain/outgoing.ts";
import { userUsage, vmHostUnreachable } from "../store/read-model.ts";
import { handleVm, lockUser, type Tx, type VmResult } from "../store/vm-store.ts";
import type { Delivery, HandlerDeps } from "./context.ts";

const log = createLogger("mikrom.vm-service.commands");

/** `CreateVm` → `create`: the operation name of spans and log lines. */
export function operationOf(type: VmCommand["type"]): string {
  return type.replace(/Vm$/, "").toLowerCase();
}

/**
 * What deciding a user's command reads first: for a create, what the user's VMs hold and their
 * limits (the command's, as a superuser set them, else this service's), under the user's lock so
 * concurrent creates are counted one after another; for the rest, the host's reachability.
 */
async function commandContext(tx: Tx, cmd: VmCommand, config: Config): Promise<DecideContext> {
  if (cmd.type === "CreateVm") {
    const { userId } = cmd.data.actor;
    await lockUser(tx, userId);
    const usage = await userUsage(tx, userId);
    const quota = cmd.data.quota;
    return {
      userVmCount: usage.vms,
      maxVmsPerUser: quota?.vms ?? config.maxVmsPerUser,
      userVcpus: usage.vcpus,
      maxVcpusPerUser: quota?.vcpus ?? config.maxVcpusPerUser,
      userMemoryMb: usage.memoryMb,
      maxMemoryMbPerUser: quota?.memoryMb ?? config.maxMemoryMbPerUser,
    };
  }
  return {
    userVmCount: 0,
    maxVmsPerUser: config.maxVmsPerUser,
    hostUnreachable: await vmHostUnreachable(tx, cmd.data.vmId),
  };
}

/** `<ns>.cmd.vm.*`: decide, append, answer (first event, or CommandRejected), all in one transaction. */
export async function onVmCommand(deps: HandlerDeps, d: Delivery<VmCommand>): Promise<VmResult> {
  const cmd = d.message;
  const action = operationOf(cmd.type);
  const { vmId, actor } = cmd.data;
  return withContext({ vm_id: vmId, user_id: String(actor.userId), user_name: actor.userName, action }, () =>
    withSpan(`service.vm.${action}`, { "mikrom.vm.id": vmId, "mikrom.command": cmd.type }, async (span) => {
      const started = performance.now();
      const result = await handleVm(deps, {
        vmId,
        inbound: { consumer: "vm-commands", messageId: d.messageId, correlationId: d.correlationId, actor },
        command: cmd.type,
        context: (tx) => commandContext(tx, cmd, deps.config),
        decide: (vm, ctx) => plan(cmd, vm, ctx),
      });
      const duration_ms = Math.round((performance.now() - started) * 100) / 100;
      span.setAttribute("mikrom.outcome", result.outcome);
      if (result.outcome === "refused")
        log.info(
          { duration_ms, code: result.refusal.code, reason: result.refusal.reason },
          `${cmd.type} refused`,
        );
      else if (result.outcome === "duplicate") log.info({ duration_ms }, `${cmd.type} already handled`);
      else log.info({ duration_ms, status: result.state.status }, `${cmd.type} accepted`);
      return result;
    }),
  );
}
