import { createRoute } from "@hono/zod-openapi";
import { GetVm, ListVms, VM_SERVICE, VmHistory, WaitVm } from "@mikrom/contracts";
import { withSpan } from "@mikrom/telemetry";
import { signedIn } from "../../auth/middleware.ts";
import type { GatewayApp } from "../../http/env.ts";
import { paged } from "../../http/paging.ts";
import { BEARER, firstValues, json, problemJson } from "../../http/route-parts.ts";
import { dataOf } from "../outcomes.ts";
import type { VmAccess } from "./access.ts";
import { acknowledgedVms } from "./acknowledged.ts";
import { nextPageToken, pageStart } from "./page-token.ts";
import {
  actorOf,
  HistoryOut,
  VmListQuery,
  VmOut,
  VmPage,
  VmPath,
  vmOut,
  WaitOut,
  WaitQuery,
} from "./schemas.ts";

const VMS = ["vms"];
const NO_SUCH_VM = problemJson("No such VM (or not yours)");

export const listVms = createRoute({
  method: "get",
  path: "/api/v1/vms",
  summary: "List VMs (your own; a superuser sees all)",
  description:
    "Newest first. Page by `page_token` (keyset: each page costs what the first does, and VMs created " +
    "or deleted during the walk do not shift it) or by `page` (OFFSET: deep pages cost more). " +
    "`page_token` with `page` > 1 is a 400, as is a token no page answered. The status filter " +
    "applies to every page as given; `total` counts them all, `page` is the page's number in the walk.",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  request: { query: firstValues(VmListQuery) },
  responses: {
    200: json("A page of VMs", VmPage),
    400: problemJson("A page_token no page answered, or one given with page > 1"),
  },
});

export const readVm = createRoute({
  method: "get",
  path: "/api/v1/vms/{vm_id}",
  summary: "Read a VM",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  request: { params: VmPath },
  responses: { 200: json("The VM", VmOut), 404: NO_SUCH_VM },
});

export const vmHistory = createRoute({
  method: "get",
  path: "/api/v1/vms/{vm_id}/events",
  summary: "The VM's full history, each event with its trace id",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  request: { params: VmPath },
  responses: { 200: json("History", HistoryOut), 404: NO_SUCH_VM },
});

export const waitForVm = createRoute({
  method: "get",
  path: "/api/v1/vms/{vm_id}/wait",
  summary: "Wait until the VM reaches a status (history first, then the live stream) or the timeout passes",
  tags: VMS,
  middleware: signedIn,
  security: BEARER,
  request: { params: VmPath, query: firstValues(WaitQuery) },
  responses: { 200: json("Whether it was reached, and the VM", WaitOut), 404: NO_SUCH_VM },
});

/**
 * The VM reads: vm-service's read model, with the creates this gateway acknowledged that it has not
 * recorded yet.
 */
export function vmQueryRoutes(app: GatewayApp, vms: VmAccess): void {
  app.openapi(listVms, async (c) => {
    const user = c.get("user");
    const q = c.req.valid("query");
    const start = pageStart(q);
    return withSpan("api.vm.list", { "user.id": user.id }, async () => {
      const request = {
        actor: actorOf(user),
        page: start.page,
        pageSize: q.page_size,
        ...(q.status && { status: q.status }),
        ...(start.after && { after: start.after }),
      };
      const list = dataOf(await vms.backend.query(VM_SERVICE, ListVms, request, vms.queryTimeoutMs), "VMs");
      // Creates acknowledged and not recorded by vm-service yet are the newest: they head page 1.
      const acknowledged =
        start.page === 1 && (q.status === undefined || q.status === "pending")
          ? await acknowledgedVms(
              vms.commands,
              request.actor,
              new Set(list.items.map((v) => v.vmId)),
              async (vmId) =>
                (
                  await vms.backend.query(
                    VM_SERVICE,
                    GetVm,
                    { vmId, actor: request.actor },
                    vms.queryTimeoutMs,
                  )
                ).ok,
            )
          : [];
      const items = [...acknowledged, ...list.items].slice(0, q.page_size);
      return c.json(
        {
          ...paged(items.map(vmOut), list.total + acknowledged.length, start.page, q.page_size),
          next_page_token: nextPageToken(items, acknowledged.length, list, start.page),
        },
        200,
      );
    });
  });

  app.openapi(readVm, async (c) => {
    const user = c.get("user");
    return withSpan("api.vm.get", { "user.id": user.id }, async () =>
      c.json(vmOut((await vms.visible(c.req.valid("param").vm_id, actorOf(user))).vm), 200),
    );
  });

  app.openapi(vmHistory, async (c) => {
    const user = c.get("user");
    return withSpan("api.vm.history", { "user.id": user.id }, async () => {
      const { vm, acknowledgedOnly } = await vms.visible(c.req.valid("param").vm_id, actorOf(user));
      if (acknowledgedOnly) return c.json({ vm_id: vm.vmId, events: [] }, 200);
      const history = dataOf(
        await vms.backend.query(
          VM_SERVICE,
          VmHistory,
          { vmId: vm.vmId, actor: actorOf(user) },
          vms.queryTimeoutMs,
        ),
        "VM",
      );
      return c.json(
        {
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
        },
        200,
      );
    });
  });

  app.openapi(waitForVm, async (c) => {
    const user = c.get("user");
    const q = c.req.valid("query");
    const vmId = c.req.valid("param").vm_id;
    // Each wait holds a socket here and a wait in vm-service until its timeout: capped per user.
    const release = await vms.waits.acquire(user.id);
    return withSpan("api.vm.wait", { "user.id": user.id }, async () => {
      const deadline = Date.now() + q.timeout * 1000;
      let { vm, acknowledgedOnly } = await vms.visible(vmId, actorOf(user));
      // A create on its way: wait for vm-service to record it, within the same bound.
      while (acknowledgedOnly && vm.status !== q.status && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        ({ vm, acknowledgedOnly } = await vms.visible(vmId, actorOf(user)));
      }
      const timeoutMs = Math.max(0, deadline - Date.now());
      if (acknowledgedOnly || timeoutMs === 0)
        return c.json({ reached: vm.status === q.status, vm: vmOut(vm) }, 200);
      const request = { vmId: vm.vmId, actor: actorOf(user), status: q.status, timeoutMs };
      const result = dataOf(
        await vms.backend.query(VM_SERVICE, WaitVm, request, timeoutMs + vms.queryTimeoutMs),
        "VM",
      );
      return c.json({ reached: result.reached, vm: vmOut(result.vm) }, 200);
    }).finally(release);
  });
}
