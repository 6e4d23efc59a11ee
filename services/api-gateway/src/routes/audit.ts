import { createRoute } from "@hono/zod-openapi";
import { AUDIT_SERVICE, type AuditEntry, AuditFilter, ListAudit } from "@mikrom/contracts";
import { z } from "zod";
import { superuserOnly } from "../auth/middleware.ts";
import type { Backend } from "../backend.ts";
import type { GatewayApp } from "../http/env.ts";
import { PageQuery, paged, pageOf } from "../http/paging.ts";
import { BEARER, firstValues, json, problemJson } from "../http/route-parts.ts";
import { dataOf } from "./outcomes.ts";

export interface AuditRouteDeps {
  readonly backend: Backend;
  readonly queryTimeoutMs: number;
}

const AuditQuery = PageQuery.extend({
  user_id: z.coerce.number().int().positive().optional(),
  vm_id: AuditFilter.optional(),
  type: AuditFilter.optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
});

const AuditOut = z.object({
  event_id: z.string(),
  type: z.string(),
  context: z.string(),
  entity_id: z.string(),
  vm_id: z.string().nullable(),
  user_id: z.int().nullable(),
  user_name: z.string().nullable(),
  trace_id: z.string().nullable(),
  correlation_id: z.string().nullable(),
  recorded_at: z.string(),
  data: z.record(z.string(), z.unknown()),
});

const auditOut = (e: AuditEntry): z.infer<typeof AuditOut> => ({
  event_id: e.eventId,
  type: e.type,
  context: e.context,
  entity_id: e.entityId,
  vm_id: e.vmId,
  user_id: e.userId,
  user_name: e.userName,
  trace_id: e.traceId,
  correlation_id: e.correlationId,
  recorded_at: e.recordedAt,
  data: e.data,
});

export const listAudit = createRoute({
  method: "get",
  path: "/api/v1/audit",
  summary:
    "The audit log: every event with its actor and trace id (superuser); filter by user, VM, type, time",
  tags: ["audit"],
  middleware: superuserOnly,
  security: BEARER,
  request: { query: firstValues(AuditQuery) },
  responses: {
    200: json("A page of audit entries, oldest first", pageOf(AuditOut)),
    403: problemJson("Not a superuser"),
  },
});

/** `GET /api/v1/audit`: every event of the system, who caused it and its trace (superuser). */
export function auditRoutes(app: GatewayApp, deps: AuditRouteDeps): void {
  app.openapi(listAudit, async (c) => {
    const q = c.req.valid("query");
    const request = {
      page: q.page,
      pageSize: q.page_size,
      ...(q.user_id !== undefined && { userId: q.user_id }),
      ...(q.vm_id !== undefined && { vmId: q.vm_id }),
      ...(q.type !== undefined && { type: q.type }),
      ...(q.from !== undefined && { from: q.from }),
      ...(q.to !== undefined && { to: q.to }),
    };
    const page = dataOf(
      await deps.backend.query(AUDIT_SERVICE, ListAudit, request, deps.queryTimeoutMs),
      "audit log",
    );
    return c.json(paged(page.items.map(auditOut), page.total, q.page, q.page_size), 200);
  });
}
