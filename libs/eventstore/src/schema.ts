import type { ColumnType, Generated } from "kysely";

/**
 * The store's tables as kysely sees them. int8 and xid8 come back from pg as strings; the store
 * turns them into bigint at its edges.
 */
export interface EventsTable {
  global_position: Generated<string>;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  schema_version: number;
  data: unknown;
  metadata: unknown;
  recorded_at: ColumnType<Date, never, never>;
  tx_id: string;
}

export interface OutboxTable {
  id: Generated<string>;
  message_id: string;
  subject: string;
  data: unknown;
  headers: Record<string, string>;
  carrier: Record<string, string>;
  created_at: ColumnType<Date, never, never>;
  /** When JetStream acknowledged it; null while it waits to be sent (again). */
  sent_at: Date | null;
}

export interface InboxTable {
  consumer: string;
  message_id: string;
  received_at: ColumnType<Date, never, never>;
}

export interface ProjectionCheckpointsTable {
  name: string;
  tx_id: string;
  position: string;
  updated_at: ColumnType<Date, never, Date>;
}

export interface EventStoreTables {
  events: EventsTable;
  outbox: OutboxTable;
  inbox: InboxTable;
  projection_checkpoints: ProjectionCheckpointsTable;
}
