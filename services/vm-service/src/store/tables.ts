import type { ColumnType, Generated } from "kysely";

/**
 * The service's own tables, so that kysely rejects wrong SQL at compile time; the event store's
 * (events, outbox, inbox) belong to @mikrom/eventstore.
 */
export interface Tables {
  vms: VmsTable;
  hosts: HostsTable;
  deadlines: DeadlinesTable;
}

export interface VmsTable {
  vm_id: string;
  user_id: number;
  name: string;
  description: string | null;
  vcpu_count: number;
  memory_mb: number;
  ip_address: string | null;
  status: string;
  error_message: string | null;
  host: string | null;
  created_at: ColumnType<Date, Date, never>;
  updated_at: Date;
  deleted: boolean;
}

export interface HostsTable {
  host_id: string;
  driver: string;
  vcpus: number;
  memory_mb: number;
  /** When its last registration or heartbeat arrived, by this service's clock. */
  last_seen: Date;
  status: "up" | "unreachable" | "lost";
  unreachable_since: Date | null;
  /** The host's own time of its last HostStopped: a message it sent before that is stale. */
  stopped_at: Date | null;
  /** The VMs placed on the host and what they hold, kept by the projection (a failed VM gives its share back). */
  placed_vms: Generated<number>;
  used_vcpus: Generated<number>;
  used_memory_mb: Generated<number>;
  /** When its last registration arrived (null: registered before this was kept). */
  registered_at: Date | null;
  /** The VMs it said it runs, in its last heartbeat. */
  running_vms: number | null;
}

export interface DeadlinesTable {
  vm_id: string;
  step: string;
  timeout_ms: number;
  due_at: Date;
  /** When the step's command is sent again if no answer came (before the deadline fails it). */
  resend_at: Date | null;
  resends: ColumnType<number, number | undefined, number>;
  /** The message id of the step's command (a deadline counts from when it first went out). */
  command_id: string | null;
}
