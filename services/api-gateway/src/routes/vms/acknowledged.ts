import type { Actor, CreateVm, DataOf, VmView } from "@mikrom/contracts";
import type { Commands } from "../../commands/dispatcher.ts";
import type { CommandRecord } from "../../commands/ledger.ts";
import { Problem } from "../../http/problem.ts";

/**
 * VMs the gateway acknowledged (201 or 202) that vm-service does not show yet: a create still on its
 * way (vm-service down, NATS restarting) reads as `pending`, never as 404. One refused after its 202
 * (the owner's VM limit, say) reads as 410 Gone with the reason.
 */
function pendingView(r: CommandRecord): VmView {
  const d = r.data as DataOf<typeof CreateVm>;
  const at = new Date(r.created_at).toISOString();
  return {
    vmId: d.vmId,
    name: d.name,
    description: d.description,
    vcpuCount: d.vcpuCount,
    memoryMb: d.memoryMb,
    ipAddress: null,
    status: "pending",
    errorMessage: null,
    host: null,
    userId: r.user_id,
    createdAt: at,
    updatedAt: at,
  };
}

const visible = (r: CommandRecord, actor: Actor): boolean => actor.superuser || r.user_id === actor.userId;

/**
 * The acknowledged VM vm-service did not find (or could not be asked about): its pending view while
 * its create is unsettled, or why it will never exist; undefined: none, or nothing more to tell.
 */
export async function acknowledgedVm(
  commands: Commands,
  vmId: string,
  actor: Actor,
  asked: "not_found" | "unavailable",
): Promise<VmView | undefined> {
  const create = await commands.createOf(vmId);
  if (!create || !visible(create, actor)) return undefined;
  if (create.outcome === null) return pendingView(create);
  if (asked === "unavailable") return undefined;
  if (create.outcome === "rejected")
    throw new Problem(410, `The VM was never created: ${create.reason ?? "refused"}`);
  // Accepted and no longer found: it was deleted since.
  return undefined;
}

/**
 * Acknowledged creates vm-service does not show, for the first page of a list: not among `known`
 * (the page), and not recorded by vm-service (`recorded`), which may list them on a later page
 * while their outcome is still on its way to the gateway.
 */
export async function acknowledgedVms(
  commands: Commands,
  actor: Actor,
  known: ReadonlySet<string>,
  recorded: (vmId: string) => Promise<boolean>,
): Promise<VmView[]> {
  const creates = await commands.unsettledCreates(actor.superuser ? null : actor.userId);
  const candidates = creates.map(pendingView).filter((vm) => !known.has(vm.vmId));
  const unknown = await Promise.all(candidates.map(async (vm) => !(await recorded(vm.vmId))));
  return candidates.filter((_, i) => unknown[i]);
}

/** A command on a VM still being created waits for it: retry, it will be there. */
export function stillCreating(vmId: string): Problem {
  return new Problem(409, `VM ${vmId} is still being created; retry shortly`, {
    headers: { "Retry-After": "1" },
  });
}
