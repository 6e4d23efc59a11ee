import type { ColumnType, Generated } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  id: Generated<number>;
  email: string;
  username: string;
  full_name: string | null;
  hashed_password: string;
  is_active: ColumnType<boolean, boolean | undefined, boolean>;
  is_superuser: ColumnType<boolean, boolean | undefined, boolean>;
  /** In every access token; raised to end the user's sessions (the tokens carrying a lower one stop working). */
  token_generation: ColumnType<number, number | undefined, number>;
  /** A superuser's overrides of vm-service's per-user limits; null: its default. */
  max_vms: ColumnType<number | null, number | null | undefined, number | null>;
  max_vcpus: ColumnType<number | null, number | null | undefined, number | null>;
  max_memory_mb: ColumnType<number | null, number | null | undefined, number | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RefreshTokensTable {
  jti: string;
  user_id: number;
  expires_at: Timestamp;
  used_at: Date | null;
  revoked_at: Date | null;
  created_at: Timestamp;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  request_hash: string;
  status: number | null;
  headers: ColumnType<Record<string, string> | null, string | null, string | null>;
  body: string | null;
  created_at: Timestamp;
  locked_until: Date | null;
}

export interface CommandsTable {
  command_id: string;
  user_id: number;
  service: string;
  verb: string;
  type: string;
  context: string;
  entity_id: string;
  data: ColumnType<Record<string, unknown>, string, string>;
  carrier: ColumnType<Record<string, string>, string, string>;
  correlation_id: string;
  created_at: Timestamp;
  attempts: ColumnType<number, number | undefined, number>;
  next_send_at: Timestamp;
  outcome: "accepted" | "rejected" | null;
  outcome_type: string | null;
  code: string | null;
  reason: string | null;
  settled_at: Date | null;
}

/** Invitations to register: only a hash of the token is kept; each is used once, before it expires. */
export interface InvitesTable {
  token_hash: string;
  created_by: number | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: Date | null;
  used_by: number | null;
}

/** A slot of a user's long-lived requests (limits/concurrency.ts), leased by the replica holding it. */
export interface HeldRequestsTable {
  user_id: number;
  kind: string;
  slot: number;
  replica: string;
  expires_at: Timestamp;
}

export interface GatewayDb {
  users: UsersTable;
  refresh_tokens: RefreshTokensTable;
  idempotency_keys: IdempotencyKeysTable;
  commands: CommandsTable;
  invites: InvitesTable;
  held_requests: HeldRequestsTable;
}
