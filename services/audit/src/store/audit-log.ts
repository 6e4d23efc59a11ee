import { isUnavailable } from "@mikrom/bus";
import type { AuditEntry, ListAudit, RequestOf, ResponseOf } from "@mikrom/contracts";
import { batched } from "@mikrom/eventstore";
import type { Generated, Kysely } from "kysely";

interface AuditLogTable {
  position: Generated<string>;
  stream_sequence: number;
  event_id: string;
  type: string;
  context: string;
  entity_id: string;
  vm_id: string | null;
  user_id: number | null;
  user_name: string | null;
  trace_id: string | null;
  correlation_id: string | null;
  recorded_at: Generated<Date>;
  data: unknown;
}

export interface AuditDatabase {
  audit_log: AuditLogTable;
}

export type NewEntry = Omit<AuditEntry, "recordedAt"> & { streamSequence: number };

const row = (entry: NewEntry) => ({
  event_id: entry.eventId,
  stream_sequence: entry.streamSequence,
  type: entry.type,
  context: entry.context,
  entity_id: entry.entityId,
  vm_id: entry.vmId,
  user_id: entry.userId,
  user_name: entry.userName,
  trace_id: entry.traceId,
  correlation_id: entry.correlationId,
  data: JSON.stringify(entry.data),
});

/**
 * Records events once each, in one statement: whether each was new (a redelivered or duplicated
 * event finds its id already there). Events with the same id must not share a call.
 */
export async function record(db: Kysely<AuditDatabase>, entries: readonly NewEntry[]): Promise<boolean[]> {
  const inserted = await db
    .insertInto("audit_log")
    .values(entries.map(row))
    .onConflict((oc) => oc.column("event_id").doNothing())
    .returning("event_id")
    .execute();
  const ids = new Set(inserted.map((r) => r.event_id));
  return entries.map((e) => ids.has(e.eventId));
}

/**
 * `record` for one event at a time, as the consumer's handlers call it: the events of a pulled batch,
 * handled at once, go in one statement and one commit; one the database refuses fails alone.
 */
export function recorder(db: Kysely<AuditDatabase>): (entry: NewEntry) => Promise<boolean> {
  return batched((entries: readonly NewEntry[]) => record(db, entries), {
    key: (entry) => entry.eventId,
    failsAll: isUnavailable,
  });
}

/** In the order of the events stream, so a page reads as a story; filters combine. */
export async function list(
  db: Kysely<AuditDatabase>,
  q: RequestOf<typeof ListAudit>,
): Promise<ResponseOf<typeof ListAudit>> {
  let query = db.selectFrom("audit_log");
  if (q.userId !== undefined) query = query.where("user_id", "=", q.userId);
  if (q.vmId !== undefined) query = query.where("vm_id", "=", q.vmId);
  if (q.type !== undefined) query = query.where("type", "=", q.type);
  if (q.from !== undefined) query = query.where("recorded_at", ">=", new Date(q.from));
  if (q.to !== undefined) query = query.where("recorded_at", "<", new Date(q.to));
  const [{ total }, rows] = await Promise.all([
    query.select((eb) => eb.fn.countAll<string>().as("total")).executeTakeFirstOrThrow(),
    query
      .selectAll()
      .orderBy("stream_sequence")
      .limit(q.pageSize)
      .offset((q.page - 1) * q.pageSize)
      .execute(),
  ]);
  return {
    total: Number(total),
    items: rows.map((r) => ({
      eventId: r.event_id,
      type: r.type,
      context: r.context,
      entityId: r.entity_id,
      vmId: r.vm_id,
      userId: r.user_id,
      userName: r.user_name,
      traceId: r.trace_id,
      correlationId: r.correlation_id,
      recordedAt: r.recorded_at.toISOString(),
      data: r.data as Record<string, unknown>,
    })),
  };
}
