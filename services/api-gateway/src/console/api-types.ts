/**
 * The JSON the console reads from the API, as the API documents it (README, /openapi.json). The
 * console is a client: it names only the fields it shows.
 */

export interface Page<T> {
  readonly items: T[];
  readonly total: number;
  readonly page: number;
  readonly page_size: number;
  readonly total_pages: number;
}

export interface Me {
  readonly id: number;
  readonly email: string;
  readonly username: string;
  readonly full_name: string | null;
  readonly name: string;
  readonly is_active: boolean;
  readonly is_superuser: boolean;
  readonly created_at: string;
}

export interface Tokens {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly expires_in: number;
  readonly user: Me;
}

export type VmStatus =
  | "pending"
  | "provisioning"
  | "starting"
  | "running"
  | "stopping"
  | "stopped"
  | "restarting"
  | "error"
  | "deleting";

export interface Vm {
  readonly vm_id: string;
  readonly name: string;
  readonly description: string | null;
  readonly vcpu_count: number;
  readonly memory_mb: number;
  readonly ip_address: string | null;
  readonly status: VmStatus;
  readonly error_message: string | null;
  readonly host: string | null;
  readonly host_status: "reachable" | "unreachable" | null;
  readonly user_id: number;
  readonly created_at: string;
  readonly updated_at: string;
}

/** 202 of a lifecycle command or delete. */
export interface VmAccepted {
  readonly message: string;
  readonly vm_id: string;
  readonly status: VmStatus;
}

export interface VmEvent {
  readonly event_id: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly recorded_at: string;
  readonly actor: { readonly user_id?: number; readonly user_name?: string } | null;
  readonly trace_id: string | null;
}

export interface Pool {
  readonly id: string;
  readonly name: string;
  readonly cidr: string;
  readonly gateway: string;
  readonly start_ip: string;
  readonly end_ip: string;
  readonly description: string | null;
  readonly is_active: boolean;
}

export interface PoolStats {
  readonly pool_id: string;
  readonly name: string;
  readonly total: number;
  readonly allocated: number;
  readonly available: number;
  readonly usage_percent: number;
}

export interface AllPoolStats {
  readonly pools: PoolStats[];
  readonly total: number;
  readonly allocated: number;
  readonly available: number;
  readonly usage_percent: number;
}

/** `GET /api/v1/hosts` */
export interface Host {
  readonly id: string;
  readonly driver: string;
  readonly vcpus: number;
  readonly memory_mb: number;
  readonly status: "up" | "unreachable" | "lost";
  readonly registered_at: string | null;
  readonly last_seen_at: string;
  readonly stopped_at: string | null;
  readonly vms: number;
  readonly running_vms: number | null;
}

export interface AuditEntry {
  readonly event_id: string;
  readonly type: string;
  readonly context: string;
  readonly entity_id: string;
  readonly vm_id: string | null;
  readonly user_id: number | null;
  readonly user_name: string | null;
  readonly trace_id: string | null;
  readonly recorded_at: string;
  readonly data: Record<string, unknown>;
}

/** Statuses an operation passes through: the console shows progress while a VM is in one. */
export const IN_PROGRESS: ReadonlySet<VmStatus> = new Set([
  "pending",
  "provisioning",
  "starting",
  "stopping",
  "restarting",
  "deleting",
]);
