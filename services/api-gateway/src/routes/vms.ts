import { randomBytes, randomUUID } from "node:crypto";
import {
  type Actor,
  CreateVm,
  DeleteVm,
  GetVm,
  ListVms,
  parse,
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
import type { Context, Hono } from "hono";
import { requireUser } from "../auth/middleware.ts";
import type { Backend, CommandOutcome } from "../backend.ts";
import type { AppEnv } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import { paged, pageOf } from "../http/paging.ts";
import { Problem } from "../http/problem.ts";
import { jsonBody, queryParams } from "../http/validate.ts";
import { dataOf, unlessRejected } from "./outcomes.ts";
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
  readonly commandTimeoutMs: number;
  readonly queryTimeoutMs: number;
}

const VMS = ["vms"];
const location = (vmId: string): string => `/api/v1/vms/${vmId}`;

/** Lifecycle commands that answer 202 with the status the VM moves to. */
const LIFECYCLE = {
  start: { def: StartVm, status: "starting", message: "VM start initiated" },
  stop: { def: StopVm, status: "stopping", message: "VM stop initiated" },
  restart: { def: RestartVm, status: "restarting", message: "VM restart initiated" },
} as const;

export function vmRoutes(app: Hono<AppEnv>, deps: VmRouteDeps, docs: OpenApi): void {
  const { backend } = deps;

  /** The caller's VM (or anyone's for a superuser); otherwise 404, malformed ids included. */
  async function visibleVm(c: Context<AppEnv>, actor: Actor): Promise<VmView> {
    const raw = c.req.param("vm_id") ?? "";
    const vmId = VmId.safeParse(raw);
    if (!vmId.success) throw new Problem(404, "VM not found");
    setContext({ vm_id: vmId.data });
    return dataOf(
      await backend.query(VM_SERVICE, GetVm, { vmId: vmId.data, actor }, deps.queryTimeoutMs),
      "VM",
    );
  }

  function send(
    verb: string,
    def: Parameters<Backend["send"]>[0]["def"],
    data: unknown,
    vmId: string,
  ): Promise<CommandOutcome> {
    return backend.send({
      service: VM_SERVICE,
      verb,
      def,
      data: parse(def, data),
      context: "vm",
      entityId: vmId,
      commandId: randomUUID(),
      timeoutMs: deps.commandTimeoutMs,
    });
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
    const vmId = `srv-${randomBytes(4).toString("hex")}`;
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
      const outcome = unlessRejected(await send("create", CreateVm, data, vmId), "VM");
      if (outcome.status === "pending") return pending(c, vmId, "pending");
      const vm = dataOf(await backend.query(VM_SERVICE, GetVm, { vmId, actor }, deps.queryTimeoutMs), "VM");
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
      return c.json(paged(list.items.map(vmOut), list.total, q.page, q.page_size));
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
      c.json(vmOut(await visibleVm(c, actorOf(user)))),
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
      const vm = await visibleVm(c, actor);
      if (body.name === undefined && body.description === undefined) return c.json(vmOut(vm));
      const data = { vmId: vm.vmId, actor, ...body };
      const outcome = unlessRejected(await send("update", UpdateVm, data, vm.vmId), "VM");
      if (outcome.status === "pending") return pending(c, vm.vmId, vm.status);
      const updated = dataOf(
        await backend.query(VM_SERVICE, GetVm, { vmId: vm.vmId, actor }, deps.queryTimeoutMs),
        "VM",
      );
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
      const vm = await visibleVm(c, actorOf(user));
      unlessRejected(await send("delete", DeleteVm, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId), "VM");
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
        const vm = await visibleVm(c, actorOf(user));
        unlessRejected(await send(verb, spec.def, { vmId: vm.vmId, actor: actorOf(user) }, vm.vmId), "VM");
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
      const vm = await visibleVm(c, actorOf(user));
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
      const vm = await visibleVm(c, actorOf(user));
      const timeoutMs = q.timeout * 1000;
      const request = { vmId: vm.vmId, actor: actorOf(user), status: q.status, timeoutMs };
      const result = dataOf(
        await backend.query(VM_SERVICE, WaitVm, request, timeoutMs + deps.queryTimeoutMs),
        "VM",
      );
      return c.json({ reached: result.reached, vm: vmOut(result.vm) });
    });
  });
}
