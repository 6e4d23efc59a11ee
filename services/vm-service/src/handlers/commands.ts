import { createLogger, withContext, withSpan } from "@mikrom/telemetry";
import type { VmCommand } from "../domain/decide.ts";
import { plan } from "../domain/outgoing.ts";
import { countUserVms, hostStatus } from "../store/read-model.ts";
import { type HandleResult, handleVm, lockUser } from "../store/vm-store.ts";
import type { Delivery, HandlerDeps } from "./context.ts";

const log = createLogger("mikrom.vm-service.commands");

/** `CreateVm` → `create`: the operation name of spans and log lines. */
export function operationOf(type: VmCommand["type"]): string {
  return type.replace(/Vm$/, "").toLowerCase();
}

/** `<ns>.cmd.vm.*`: decide, append, answer (first event, or CommandRejected), all in one transaction. */
export async function onVmCommand(deps: HandlerDeps, d: Delivery<VmCommand>): Promise<HandleResult> {
  const cmd = d.message;
  const action = operationOf(cmd.type);
  const { vmId, actor } = cmd.data;
  return withContext({ vm_id: vmId, user_id: String(actor.userId), user_name: actor.userName, action }, () =>
    withSpan(`service.vm.${action}`, { "mikrom.vm.id": vmId, "mikrom.command": cmd.type }, async (span) => {
      const started = performance.now();
      const result = await handleVm(
        deps,
        vmId,
        { consumer: "vm-commands", messageId: d.messageId, correlationId: d.correlationId, actor },
        cmd.type,
        async (vm, tx) => {
          let userVmCount = 0;
          if (cmd.type === "CreateVm") {
            await lockUser(tx, actor.userId);
            userVmCount = await countUserVms(tx, actor.userId);
          }
          const hostUnreachable = vm.hostId !== null && (await hostStatus(tx, vm.hostId)) === "unreachable";
          return plan(cmd, vm, { userVmCount, maxVmsPerUser: deps.config.maxVmsPerUser, hostUnreachable });
        },
      );
      const duration_ms = Math.round((performance.now() - started) * 100) / 100;
      span.setAttribute("mikrom.outcome", result.kind);
      if (result.kind === "refused")
        log.info(
          { duration_ms, code: result.refusal.code, reason: result.refusal.reason },
          `${cmd.type} refused`,
        );
      else if (result.kind === "duplicate") log.info({ duration_ms }, `${cmd.type} already handled`);
      else log.info({ duration_ms, status: result.vm.status }, `${cmd.type} accepted`);
      return result;
    }),
  );
}
