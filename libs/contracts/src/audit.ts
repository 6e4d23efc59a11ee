import { z } from "zod";
import { Timestamp, UserId } from "./ids.ts";
import { query } from "./message.ts";
import { Text } from "./text.ts";

/** The audit service keeps every event of every service; it answers `<ns>.qry.audit.<name>`. */
export const AUDIT_SERVICE = "audit";

export const AuditEntry = z.object({
  eventId: z.string(),
  type: z.string(),
  context: z.string(),
  entityId: z.string(),
  vmId: z.string().nullable(),
  userId: UserId.nullable(),
  userName: z.string().nullable(),
  traceId: z.string().nullable(),
  correlationId: z.string().nullable(),
  recordedAt: Timestamp,
  data: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

/** A text filter of the audit log (a VM id, an event type): compared with what is stored. */
export const AuditFilter = Text.min(1).max(64);

export const ListAudit = query(
  "list",
  z.object({
    userId: UserId.optional(),
    vmId: AuditFilter.optional(),
    type: AuditFilter.optional(),
    from: Timestamp.optional(),
    to: Timestamp.optional(),
    page: z.int().min(1).default(1),
    pageSize: z.int().min(1).max(500).default(50),
  }),
  z.object({ items: z.array(AuditEntry), total: z.int().nonnegative() }),
);
