import { createRoute } from "@hono/zod-openapi";
import { type HostView, ListHosts, VM_SERVICE } from "@mikrom/contracts";
import { z } from "zod";
import { superuserOnly } from "../auth/middleware.ts";
import type { Backend } from "../backend.ts";
import type { GatewayApp } from "../http/env.ts";
import { BEARER, json, problemJson } from "../http/route-parts.ts";
import { dataOf } from "./outcomes.ts";
import { actorOf } from "./vms/schemas.ts";

export interface HostRouteDeps {
  readonly backend: Backend;
  readonly queryTimeoutMs: number;
}

const HostOut = z.object({
  id: z.string(),
  driver: z.string(),
  vcpus: z.int(),
  memory_mb: z.int(),
  status: z.enum(["up", "unreachable", "lost"]),
  registered_at: z.string().nullable(),
  last_seen_at: z.string().describe("When its last registration or heartbeat arrived"),
  unreachable_since: z.string().nullable(),
  stopped_at: z.string().nullable(),
  vms: z.int().describe("VMs placed on it"),
  used_vcpus: z.int(),
  used_memory_mb: z.int(),
  running_vms: z.int().nullable().describe("VMs the host said it runs, in its last heartbeat"),
});

const hostOut = (h: HostView): z.infer<typeof HostOut> => ({
  id: h.hostId,
  driver: h.driver,
  vcpus: h.vcpus,
  memory_mb: h.memoryMb,
  status: h.status,
  registered_at: h.registeredAt,
  last_seen_at: h.lastSeenAt,
  unreachable_since: h.unreachableSince,
  stopped_at: h.stoppedAt,
  vms: h.placedVms,
  used_vcpus: h.usedVcpus,
  used_memory_mb: h.usedMemoryMb,
  running_vms: h.runningVms,
});

export const listHosts = createRoute({
  method: "get",
  path: "/api/v1/hosts",
  summary: "The hypervisor hosts: capacity, load, liveness and last heartbeat (superuser)",
  tags: ["hosts"],
  middleware: superuserOnly,
  security: BEARER,
  responses: {
    200: json("Every host, by id", z.object({ items: z.array(HostOut) })),
    403: problemJson("Not a superuser"),
  },
});

/** `GET /api/v1/hosts`: vm-service's host registry (superuser). */
export function hostRoutes(app: GatewayApp, deps: HostRouteDeps): void {
  app.openapi(listHosts, async (c) => {
    const actor = actorOf(c.get("user"));
    const reply = await deps.backend.query(VM_SERVICE, ListHosts, { actor }, deps.queryTimeoutMs);
    return c.json({ items: dataOf(reply, "hosts").items.map(hostOut) }, 200);
  });
}
