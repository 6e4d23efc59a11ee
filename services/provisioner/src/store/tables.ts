import type { ColumnType, Generated } from "kysely";

/** jsonb: read as parsed JSON, written as JSON text. */
type Json = ColumnType<unknown, string, string>;

export interface InstancesTable {
  vm_id: string;
  status: string;
  driver: string;
  spec: Json;
  instance: ColumnType<unknown, string | null, string | null>;
  pid: number | null;
  socket: string | null;
  console_log: string | null;
  stream_version: number;
  /** The command whose driver work is under way (see migration 002). */
  operation: string | null;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** The agent's own tables (the event store's are the library's). */
export interface ProvisionerTables {
  instances: InstancesTable;
}
