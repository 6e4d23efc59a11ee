import { createRoute } from "@hono/zod-openapi";
import {
  CreateVm,
  createdView,
  DeleteVm,
  RestartVm,
  StartVm,
  StopVm,
  UpdateVm,
  type UserQuota,
  VmCreated,
  type VmView,
} from "@mikrom/contracts";
import { setContext, withSpan } from "@mikrom/telemetry";
import { signedIn } from "../../auth/middleware.ts";
import type { CommandOutcome } from "../../backend.ts";
import { entityIdFor } from "../../commands/ids.ts";
import type { GatewayApp } from "../../http/env.ts";
import { Problem } from "../../http/problem.ts";
import { BEARER, inOrder, json, jsonRequest, problemJson } from "../../http/route-parts.ts";
import { readJson } from "../../http/validate.ts";
import type { UserRow } from "../../store/users.ts";
import { unlessRejected } from "../outcomes.ts";
import { location, stillPending, type VmAccess } from "./access.ts";
import { stillCreating } from "./acknowledged.ts";
import { actorOf, VmAccepted, VmCreateBody, VmOut, VmPatchBody, VmPath, vmOut } from "./schemas.ts";

const VMS = ["vms"];
const NO_SUCH_VM = problemJson("No such VM (or not yours)");
const REFUSED = problemJson("Refused by vm-service");

export const createVm = createRoute({
  method: "post",
  path: "/api/v1/vms",
  summary: "Create a VM (answers once vm-service has recorded it)",
  tags: VMS,
  middleware: inOrder(signedIn, readJson),
  security: BEARER,
  request: { body: jsonRequest(VmCreateBody) },
  responses: {
    201: json("Created, status pending", VmOut),
    202: json("Accepted; vm-service did not answer within the bound (see Location)", VmAccepted),
    409: REFUSED,
  },
});

export const buildImage = createRoute({
  method: "post",
  path: "/api/v1/vms/build",
  summary: "Build an image (not implemented)",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  responses: { 501: problemJson("Not implemented") },
});

export const updateVm = createRoute({
  method: "patch",
  path: "/api/v1/vms/{vm_id}",
  summary: "Rename or describe a VM",
  tags: VMS,
  middleware: inOrder(signedIn, readJson),
  security: BEARER,
  request: { params: VmPath, body: jsonRequest(VmPatchBody) },
  responses: {
    200: json("The changed VM", VmOut),
    202: json("Accepted; vm-service did not answer within the bound", VmAccepted),
    404: NO_SUCH_VM,
    409: REFUSED,
  },
});

export const deleteVm = createRoute({
  method: "delete",
  path: "/api/v1/vms/{vm_id}",
  summary: "Delete a VM",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  request: { params: VmPath },
  responses: {
    202: json("Deletion started", VmAccepted),
    404: NO_SUCH_VM,
    409: REFUSED,
  },
});

/** Lifecycle commands that answer 202 with the status the VM moves to. */
const LIFECYCLE = {
  start: { def: StartVm, status: "starting", message: "VM start initiated" },
  stop: { def: StopVm, status: "stopping", message: "VM stop initiated" },
  restart: { def: RestartVm, status: "restarting", message: "VM restart initiated" },
} as const;

const lifecycleRoute = (verb: keyof typeof LIFECYCLE) =>
  createRoute({
    method: "post",
    path: `/api/v1/vms/{vm_id}/${verb}`,
    summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} a VM`,
    tags: VMS,
    middleware: signedIn,
    security: BEARER,
    request: { params: VmPath },
    responses: {
      202: json(LIFECYCLE[verb].status, VmAccepted),
      404: NO_SUCH_VM,
      409: problemJson("The VM's status does not allow it (reason from vm-service)"),
    },
  });

/**
 * The VM commands: each answers once vm-service accepted or refused it, or 202 when it did not say
 * in time.
 */
/** The VM a create's outcome event describes, when it is a VmCreated with its recorded time. */
function createdBy(outcome: CommandOutcome & { status: "accepted" }): VmView | undefined {
  if (outcome.eventType !== VmCreated.type || !outcome.recordedAt) return undefined;
  const data = VmCreated.schema.safeParse(outcome.data);
  return data.success ? createdView(data.data, outcome.recordedAt) : undefined;
}

export function vmCommandRoutes(app: GatewayApp, vms: VmAccess): void {
  app.openapi(createVm, async (c) => {
    const user = c.get("user");
    const body = c.req.valid("json");
    // With an Idempotency-Key the key decides the VM: every retry can only reach this one.
    const vmId = entityIdFor("srv", user.id, c.get("idempotencyKey"));
    setContext({ vm_id: vmId, action: "create" });
    return withSpan("api.vm.create", { "vm.id": vmId, "user.id": user.id }, async () => {
      const actor = actorOf(user);
      const data = {
        vmId,
        actor,
        name: body.name,
        description: body.description ?? null,
        vcpuCount: body.vcpu_count,
        memoryMb: body.memory_mb,
        ...(body.pool !== undefined && { pool: body.pool }),
        ...quotaOf(user),
      };
      const outcome = unlessRejected(await vms.send(c, user, "create", CreateVm, data, vmId), "VM");
      // Recorded by vm-service, or recorded here and on its way: either way the VM will exist. Its
      // VmCreated says how it reads; an answer from the ledger (a retry) does not, so ask.
      const created = outcome.status === "accepted" ? createdBy(outcome) : undefined;
      const vm = created ?? (outcome.status === "accepted" ? await vms.current(vmId, actor) : undefined);
      if (!vm) return stillPending(c, vmId, "pending");
      c.header("Location", location(vmId));
      return c.json(vmOut(vm), 201);
    });
  });

  app.openapi(buildImage, () => {
    throw new Problem(501, "Building images is not implemented by this server");
  });

  app.openapi(updateVm, async (c) => {
    const user = c.get("user");
    const actor = actorOf(user);
    const body = c.req.valid("json");
    setContext({ action: "update" });
    return withSpan("api.vm.update", { "user.id": user.id }, async () => {
      const { vm, acknowledgedOnly } = await vms.visible(c.req.valid("param").vm_id, actor);
      if (body.name === undefined && body.description === undefined) return c.json(vmOut(vm), 200);
      if (acknowledgedOnly) throw stillCreating(vm.vmId);
      const data = { vmId: vm.vmId, actor, ...body };
      const outcome = unlessRejected(await vms.send(c, user, "update", UpdateVm, data, vm.vmId), "VM");
      const updated = outcome.status === "accepted" ? await vms.current(vm.vmId, actor) : undefined;
      if (!updated) return stillPending(c, vm.vmId, vm.status);
      return c.json(vmOut(updated), 200);
    });
  });

  app.openapi(deleteVm, async (c) => {
    const user = c.get("user");
    setContext({ action: "delete" });
    return withSpan("api.vm.delete", { "user.id": user.id }, async () => {
      const vm = await vms.commandable(c.req.valid("param").vm_id, actorOf(user));
      unlessRejected(
        await vms.send(c, user, "delete", DeleteVm, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId),
        "VM",
      );
      c.header("Location", location(vm.vmId));
      return c.json({ message: "VM deletion initiated", vm_id: vm.vmId, status: "deleting" as const }, 202);
    });
  });

  for (const verb of ["start", "stop", "restart"] as const) {
    const spec = LIFECYCLE[verb];
    app.openapi(lifecycleRoute(verb), async (c) => {
      const user = c.get("user");
      setContext({ action: verb });
      return withSpan(`api.vm.${verb}`, { "user.id": user.id }, async () => {
        const vm = await vms.commandable(c.req.valid("param").vm_id, actorOf(user));
        unlessRejected(
          await vms.send(c, user, verb, spec.def, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId),
          "VM",
        );
        c.header("Location", location(vm.vmId));
        return c.json({ message: spec.message, vm_id: vm.vmId, status: spec.status }, 202);
      });
    });
  }
}

/** The user's limits a superuser set, for vm-service to check with the rest (absent: its defaults). */
function quotaOf(user: UserRow): { quota?: UserQuota } {
  const quota: UserQuota = {
    ...(user.max_vms !== null && { vms: user.max_vms }),
    ...(user.max_vcpus !== null && { vcpus: user.max_vcpus }),
    ...(user.max_memory_mb !== null && { memoryMb: user.max_memory_mb }),
  };
  return Object.keys(quota).length > 0 ? { quota } : {};
}
