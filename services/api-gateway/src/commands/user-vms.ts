import { type Actor, DeleteVm, ListVms, VM_SERVICE } from "@mikrom/contracts";
import type { Backend } from "../backend.ts";
import { Problem } from "../http/problem.ts";
import { dataOf } from "../routes/outcomes.ts";
import type { Commands } from "./dispatcher.ts";
import { commandIdFor } from "./ids.ts";

const PAGE = 100;
/** Deletes sent at a time: each waits (bounded) for vm-service's answer. */
const AT_ONCE = 16;

export interface UserVmDeps {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
}

/**
 * Sends DeleteVm for every VM of `owner` (stopping it, releasing its address: vm-service's delete),
 * by the same path as `DELETE /api/v1/vms/{id}`: recorded in the command ledger, then sent and sent
 * again until vm-service answers. Idempotent: each command's id comes from the owner and the VM, so
 * running this again (a retried user deletion, after a crash) reaches the same commands, which the
 * ledger and vm-service drop as duplicates; a VM already deleting or gone is no failure.
 * Creates of the owner still on their way (not yet recorded by vm-service) cannot be deleted yet:
 * a 409 to retry, once the deletes of what exists are sent.
 */
export async function deleteVmsOf(
  deps: UserVmDeps,
  owner: { id: number; username: string },
  by: Actor,
): Promise<number> {
  const asOwner: Actor = { userId: owner.id, userName: owner.username, superuser: false };
  const vmIds: string[] = [];
  for (let page = 1; ; page++) {
    const list = dataOf(
      await deps.backend.query(
        VM_SERVICE,
        ListVms,
        { actor: asOwner, page, pageSize: PAGE },
        deps.queryTimeoutMs,
      ),
      "VMs",
    );
    vmIds.push(...list.items.map((vm) => vm.vmId));
    if (list.items.length < PAGE || page * PAGE >= list.total) break;
  }
  for (let i = 0; i < vmIds.length; i += AT_ONCE) {
    await Promise.all(
      vmIds.slice(i, i + AT_ONCE).map((vmId) =>
        // Any answer will do: accepted, pending (the ledger carries it), already deleting, not found.
        deps.commands.submit({
          service: VM_SERVICE,
          verb: "delete",
          def: DeleteVm,
          data: { vmId, actor: by },
          context: "vm",
          entityId: vmId,
          commandId: commandIdFor(by.userId, `delete-user-${owner.id}`, vmId),
          userId: by.userId,
        }),
      ),
    );
  }
  const onTheirWay = await deps.commands.unsettledCreates(owner.id);
  if (onTheirWay.length > 0) {
    throw new Problem(409, "VMs of this user are still being created; retry the deletion in a few seconds", {
      headers: { "Retry-After": "5" },
    });
  }
  return vmIds.length;
}
