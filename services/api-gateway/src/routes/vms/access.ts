import { type Actor, GetVm, VM_SERVICE, VmId, type VmStatus, type VmView } from "@mikrom/contracts";
import { setContext } from "@mikrom/telemetry";
import type { Context, TypedResponse } from "hono";
import type { Backend, CommandOutcome } from "../../backend.ts";
import type { CommandRequest, Commands } from "../../commands/dispatcher.ts";
import { commandIdFor } from "../../commands/ids.ts";
import { Problem } from "../../http/problem.ts";
import type { ConcurrencyCap } from "../../limits/concurrency.ts";
import type { UserRow } from "../../store/users.ts";
import { dataOf, unavailable } from "../outcomes.ts";
import { acknowledgedVm, stillCreating } from "./acknowledged.ts";

export interface VmRouteDeps {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
  /** `/wait`s one user may hold at once. */
  readonly waits: ConcurrencyCap;
}

/** A VM as the caller may see it, and whether only the gateway knows it yet (a create on its way). */
export interface Visible {
  readonly vm: VmView;
  readonly acknowledgedOnly: boolean;
  /** vm-service could not be asked: the view is the gateway's record alone. */
  readonly serviceAway: boolean;
}

export const location = (vmId: string): string => `/api/v1/vms/${vmId}`;

/** How the VM routes reach VMs: vm-service's answers, and the creates this gateway acknowledged. */
export class VmAccess {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
  readonly waits: ConcurrencyCap;

  constructor(deps: VmRouteDeps) {
    this.backend = deps.backend;
    this.commands = deps.commands;
    this.queryTimeoutMs = deps.queryTimeoutMs;
    this.waits = deps.waits;
  }

  /** The caller's VM (or anyone's for a superuser); otherwise 404, malformed ids included. */
  async visible(rawId: string, actor: Actor): Promise<Visible> {
    const vmId = VmId.safeParse(rawId);
    if (!vmId.success) throw new Problem(404, "VM not found");
    setContext({ vm_id: vmId.data });
    const reply = await this.backend.query(
      VM_SERVICE,
      GetVm,
      { vmId: vmId.data, actor },
      this.queryTimeoutMs,
    );
    // Not found, or vm-service away: a create this gateway acknowledged still reads as pending.
    if (!reply.ok && (reply.error.code === "not_found" || reply.error.code === "unavailable")) {
      const acknowledged = await acknowledgedVm(this.commands, vmId.data, actor, reply.error.code);
      if (acknowledged)
        return { vm: acknowledged, acknowledgedOnly: true, serviceAway: reply.error.code === "unavailable" };
    }
    return { vm: dataOf(reply, "VM"), acknowledgedOnly: false, serviceAway: false };
  }

  /** A VM a command can go to: one vm-service has recorded (a create on its way answers 409, retry). */
  async commandable(rawId: string, actor: Actor): Promise<VmView> {
    const { vm, acknowledgedOnly, serviceAway } = await this.visible(rawId, actor);
    if (serviceAway) throw unavailable("VM");
    if (acknowledgedOnly) throw stillCreating(vm.vmId);
    return vm;
  }

  /** The VM as vm-service has it now; undefined when it cannot tell. */
  async current(vmId: string, actor: Actor): Promise<VmView | undefined> {
    const reply = await this.backend.query(VM_SERVICE, GetVm, { vmId, actor }, this.queryTimeoutMs);
    return reply.ok ? reply.data : undefined;
  }

  /** Sends a command about one VM; with an Idempotency-Key its id comes from the key and the request. */
  send(
    c: Context,
    user: UserRow,
    verb: string,
    def: CommandRequest["def"],
    data: unknown,
    vmId: string,
  ): Promise<CommandOutcome> {
    const idempotencyKey: string | undefined = c.get("idempotencyKey");
    return this.commands.submit({
      service: VM_SERVICE,
      verb,
      def,
      data,
      context: "vm",
      entityId: vmId,
      commandId: commandIdFor(user.id, idempotencyKey, `${c.req.method} ${c.req.path}`),
      userId: user.id,
    });
  }
}

type Accepted = { message: string; vm_id: string; status: VmStatus };

/** The answer while vm-service has not answered: 202, and where to look. */
export function stillPending(
  c: Context,
  vmId: string,
  status: VmStatus,
): Response & TypedResponse<Accepted, 202, "json"> {
  c.header("Location", location(vmId));
  return c.json({ message: "Accepted; the VM service has not answered yet", vm_id: vmId, status }, 202);
}
