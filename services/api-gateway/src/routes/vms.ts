import {
  type Actor,
  CreateVm,
  DeleteVm,
  GetVm,
  ListVms,
  RestartVm,
  StartVm,
  StopVm,
  UpdateVm,
  VM_SERVICE,
  VmHistory,
  VmId,
  type VmStatus,
  type VmView,
  WaitVm,
} from "@mikrom/contracts";
import { setContext, withSpan } from "@mikrom/telemetry";
import type { Context } from "hono";
import { requireUser } from "../auth/middleware.ts";
import type { Backend, CommandOutcome } from "../backend.ts";
import type { CommandRequest, Commands } from "../commands/dispatcher.ts";
import { commandIdFor, entityIdFor } from "../commands/ids.ts";
import type { AppEnv, GatewayApp } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import { paged, pageOf } from "../http/paging.ts";
import { Problem } from "../http/problem.ts";
import { jsonBody, queryParams } from "../http/validate.ts";
import type { UserRow } from "../store/users.ts";
import { acknowledgedVm, acknowledgedVms, stillCreating } from "./acknowledged.ts";
import { dataOf, unavailable, unlessRejected } from "./outcomes.ts";
import {
  actorOf,
  HistoryOut,
  VmAccepted,
  VmCreateBody,
  VmListQuery,
  VmOut,
  VmPatchBody,
  vmOut,
  WaitOut,
  WaitQuery,
} from "./vm-schemas.ts";

export interface VmRouteDeps {
  readonly backend: Backend;
  readonly commands: Commands;
  readonly queryTimeoutMs: number;
}

/** A VM as the caller may see it, and whether only the gateway knows it yet (a create on its way). */
interface Visible {
  readonly vm: VmView;
  readonly acknowledgedOnly: boolean;
  /** vm-service could not be asked: the view is the gateway's record alone. */
  readonly serviceAway: boolean;
}

const VMS = ["vms"];
const location = (vmId: string): string => `/api/v1/vms/${vmId}`;

/** Lifecycle commands that answer 202 with the status the VM moves to. */
const LIFECYCLE = {
  start: { def: StartVm, status: "starting", message: "VM start initiated" },
  stop: { def: StopVm, status: "stopping", message: "VM stop initiated" },
  restart: { def: RestartVm, status: "restarting", message: "VM restart initiated" },
} as const;

export function vmRoutes(app: GatewayApp, deps: VmRouteDeps, docs: OpenApi): void {
  const { backend, commands } = deps;

  /** The caller's VM (or anyone's for a superuser); otherwise 404, malformed ids included. */
  async function visibleVm(c: Context<AppEnv>, actor: Actor): Promise<Visible> {
    const raw = c.req.param("vm_id") ?? "";
    const vmId = VmId.safeParse(raw);
    if (!vmId.success) throw new Problem(404, "VM not found");
    setContext({ vm_id: vmId.data });
    const reply = await backend.query(VM_SERVICE, GetVm, { vmId: vmId.data, actor }, deps.queryTimeoutMs);
    // Not found, or vm-service away: a create this gateway acknowledged still reads as pending.
    if (!reply.ok && (reply.error.code === "not_found" || reply.error.code === "unavailable")) {
      const acknowledged = await acknowledgedVm(commands, vmId.data, actor, reply.error.code);
      if (acknowledged)
        return { vm: acknowledged, acknowledgedOnly: true, serviceAway: reply.error.code === "unavailable" };
    }
    return { vm: dataOf(reply, "VM"), acknowledgedOnly: false, serviceAway: false };
  }

  /** A VM a command can go to: one vm-service has recorded (a create on its way answers 409, retry). */
  async function commandableVm(c: Context<AppEnv>, actor: Actor): Promise<VmView> {
    const { vm, acknowledgedOnly, serviceAway } = await visibleVm(c, actor);
    if (serviceAway) throw unavailable("VM");
    if (acknowledgedOnly) throw stillCreating(vm.vmId);
    return vm;
  }

  /** Sends a command about one VM; with an Idempotency-Key its id comes from the key and the request. */
  function send(
    c: Context<AppEnv>,
    user: UserRow,
    verb: string,
    def: CommandRequest["def"],
    data: unknown,
    vmId: string,
  ): Promise<CommandOutcome> {
    return commands.submit({
      service: VM_SERVICE,
      verb,
      def,
      data,
      context: "vm",
      entityId: vmId,
      commandId: commandIdFor(user.id, c.get("idempotencyKey"), `${c.req.method} ${c.req.path}`),
      userId: user.id,
    });
  }

  async function getVm(vmId: string, actor: Actor): Promise<VmView | undefined> {
    const reply = await backend.query(VM_SERVICE, GetVm, { vmId, actor }, deps.queryTimeoutMs);
    return reply.ok ? reply.data : undefined;
  }

  const pending = (c: Context<AppEnv>, vmId: string, status: VmStatus) => {
    c.header("Location", location(vmId));
    return c.json({ message: "Accepted; the VM service has not answered yet", vm_id: vmId, status }, 202);
  };

  docs.add({
    method: "post",
    path: "/api/v1/vms",
    summary: "Create a VM (answers once vm-service has recorded it)",
    tags: VMS,
    body: VmCreateBody,
    responses: {
      201: { description: "Created, status pending", schema: VmOut },
      202: {
        description: "Accepted; vm-service did not answer within the bound (see Location)",
        schema: VmAccepted,
      },
      409: { description: "Refused by vm-service", problem: true },
    },
  });
  app.post("/api/v1/vms", async (c) => {
    const user = requireUser(c);
    const body = await jsonBody(c, VmCreateBody);
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
      };
      const outcome = unlessRejected(await send(c, user, "create", CreateVm, data, vmId), "VM");
      // Recorded by vm-service, or recorded here and on its way: either way the VM will exist.
      const vm = outcome.status === "accepted" ? await getVm(vmId, actor) : undefined;
      if (!vm) return pending(c, vmId, "pending");
      c.header("Location", location(vmId));
      return c.json(vmOut(vm), 201);
    });
  });

  docs.add({
    method: "post",
    path: "/api/v1/vms/build",
    summary: "Build an image (not implemented)",
    tags: VMS,
    responses: { 501: { description: "Not implemented", problem: true } },
  });
  app.post("/api/v1/vms/build", (c) => {
    requireUser(c);
    throw new Problem(501, "Building images is not implemented by this server");
  });

  docs.add({
    method: "get",
    path: "/api/v1/vms",
    summary: "List VMs (your own; a superuser sees all)",
    tags: VMS,
    query: VmListQuery,
    responses: { 200: { description: "A page of VMs", schema: pageOf(VmOut) } },
  });
  app.get("/api/v1/vms", async (c) => {
    const user = requireUser(c);
    const q = queryParams(c, VmListQuery);
    return withSpan("api.vm.list", { "user.id": user.id }, async () => {
      const request = {
        actor: actorOf(user),
        page: q.page,
        pageSize: q.page_size,
        ...(q.status && { status: q.status }),
      };
      const list = dataOf(await backend.query(VM_SERVICE, ListVms, request, deps.queryTimeoutMs), "VMs");
      // Creates acknowledged and not recorded by vm-service yet are the newest: they head page 1.
      const acknowledged =
        q.page === 1 && (q.status === undefined || q.status === "pending")
          ? await acknowledgedVms(commands, request.actor, new Set(list.items.map((v) => v.vmId)))
          : [];
      const items = [...acknowledged, ...list.items].slice(0, q.page_size);
      return c.json(paged(items.map(vmOut), list.total + acknowledged.length, q.page, q.page_size));
    });
  });

  docs.add({
    method: "get",
    path: "/api/v1/vms/:vm_id",
    summary: "Read a VM",
    tags: VMS,
    responses: {
      200: { description: "The VM", schema: VmOut },
      404: { description: "No such VM (or not yours)", problem: true },
    },
  });
  app.get("/api/v1/vms/:vm_id", async (c) => {
    const user = requireUser(c);
    return withSpan("api.vm.get", { "user.id": user.id }, async () =>
      c.json(vmOut((await visibleVm(c, actorOf(user))).vm)),
    );
  });

  docs.add({
    method: "patch",
    path: "/api/v1/vms/:vm_id",
    summary: "Rename or describe a VM",
    tags: VMS,
    body: VmPatchBody,
    responses: {
      200: { description: "The changed VM", schema: VmOut },
      202: { description: "Accepted; vm-service did not answer within the bound", schema: VmAccepted },
      404: { description: "No such VM (or not yours)", problem: true },
      409: { description: "Refused by vm-service", problem: true },
    },
  });
  app.patch("/api/v1/vms/:vm_id", async (c) => {
    const user = requireUser(c);
    const actor = actorOf(user);
    const body = await jsonBody(c, VmPatchBody);
    setContext({ action: "update" });
    return withSpan("api.vm.update", { "user.id": user.id }, async () => {
      const { vm, acknowledgedOnly } = await visibleVm(c, actor);
      if (body.name === undefined && body.description === undefined) return c.json(vmOut(vm));
      if (acknowledgedOnly) throw stillCreating(vm.vmId);
      const data = { vmId: vm.vmId, actor, ...body };
      const outcome = unlessRejected(await send(c, user, "update", UpdateVm, data, vm.vmId), "VM");
      const updated = outcome.status === "accepted" ? await getVm(vm.vmId, actor) : undefined;
      if (!updated) return pending(c, vm.vmId, vm.status);
      return c.json(vmOut(updated));
    });
  });

  docs.add({
    method: "delete",
    path: "/api/v1/vms/:vm_id",
    summary: "Delete a VM",
    tags: VMS,
    responses: {
      202: { description: "Deletion started", schema: VmAccepted },
      404: { description: "No such VM (or not yours)", problem: true },
      409: { description: "Refused by vm-service", problem: true },
    },
  });
  app.delete("/api/v1/vms/:vm_id", async (c) => {
    const user = requireUser(c);
    setContext({ action: "delete" });
    return withSpan("api.vm.delete", { "user.id": user.id }, async () => {
      const vm = await commandableVm(c, actorOf(user));
      unlessRejected(
        await send(c, user, "delete", DeleteVm, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId),
        "VM",
      );
      c.header("Location", location(vm.vmId));
      return c.json({ message: "VM deletion initiated", vm_id: vm.vmId, status: "deleting" }, 202);
    });
  });

  for (const [verb, spec] of Object.entries(LIFECYCLE)) {
    docs.add({
      method: "post",
      path: `/api/v1/vms/:vm_id/${verb}`,
      summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} a VM`,
      tags: VMS,
      responses: {
        202: { description: `${spec.status}`, schema: VmAccepted },
        404: { description: "No such VM (or not yours)", problem: true },
        409: { description: "The VM's status does not allow it (reason from vm-service)", problem: true },
      },
    });
    app.post(`/api/v1/vms/:vm_id/${verb}`, async (c) => {
      const user = requireUser(c);
      setContext({ action: verb });
      return withSpan(`api.vm.${verb}`, { "user.id": user.id }, async () => {
        const vm = await commandableVm(c, actorOf(user));
        unlessRejected(
          await send(c, user, verb, spec.def, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId),
          "VM",
        );
        c.header("Location", location(vm.vmId));
        return c.json({ message: spec.message, vm_id: vm.vmId, status: spec.status }, 202);
      });
    });
  }

  docs.add({
    method: "get",
    path: "/api/v1/vms/:vm_id/events",
    summary: "The VM's full history, each event with its trace id",
    tags: VMS,
    responses: {
      200: { description: "History", schema: HistoryOut },
      404: { description: "No such VM (or not yours)", problem: true },
    },
  });
  app.get("/api/v1/vms/:vm_id/events", async (c) => {
    const user = requireUser(c);
    return withSpan("api.vm.history", { "user.id": user.id }, async () => {
      const { vm, acknowledgedOnly } = await visibleVm(c, actorOf(user));
      if (acknowledgedOnly) return c.json({ vm_id: vm.vmId, events: [] });
      const history = dataOf(
        await backend.query(
          VM_SERVICE,
          VmHistory,
          { vmId: vm.vmId, actor: actorOf(user) },
          deps.queryTimeoutMs,
        ),
        "VM",
      );
      return c.json({
        vm_id: vm.vmId,
        events: history.events.map((e) => ({
          event_id: e.eventId,
          type: e.type,
          version: e.version,
          data: e.data,
          recorded_at: e.recordedAt,
          actor: e.actor ? { user_id: e.actor.userId, user_name: e.actor.userName } : null,
          trace_id: e.traceId,
        })),
      });
    });
  });

  docs.add({
    method: "get",
    path: "/api/v1/vms/:vm_id/wait",
    summary: "Wait until the VM reaches a status (history first, then the live stream) or the timeout passes",
    tags: VMS,
    query: WaitQuery,
    responses: {
      200: { description: "Whether it was reached, and the VM", schema: WaitOut },
      404: { description: "No such VM (or not yours)", problem: true },
    },
  });
  app.get("/api/v1/vms/:vm_id/wait", async (c) => {
    const user = requireUser(c);
    const q = queryParams(c, WaitQuery);
    return withSpan("api.vm.wait", { "user.id": user.id }, async () => {
      const deadline = Date.now() + q.timeout * 1000;
      let { vm, acknowledgedOnly } = await visibleVm(c, actorOf(user));
      // A create on its way: wait for vm-service to record it, within the same bound.
      while (acknowledgedOnly && vm.status !== q.status && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        ({ vm, acknowledgedOnly } = await visibleVm(c, actorOf(user)));
      }
      const timeoutMs = Math.max(0, deadline - Date.now());
      if (acknowledgedOnly || timeoutMs === 0)
        return c.json({ reached: vm.status === q.status, vm: vmOut(vm) });
      const request = { vmId: vm.vmId, actor: actorOf(user), status: q.status, timeoutMs };
      const result = dataOf(
        await backend.query(VM_SERVICE, WaitVm, request, timeoutMs + deps.queryTimeoutMs),
        "VM",
      );
      return c.json({ reached: result.reached, vm: vmOut(result.vm) });
    });
  });
}
