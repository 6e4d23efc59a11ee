import { createLogger, errorFields } from "@mikrom/telemetry";
import { type ColumnType, type Generated, Kysely, PostgresDialect } from "kysely";
import pg from "pg";

const log = createLogger("mikrom.api-gateway.db");

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  id: Generated<number>;
  email: string;
  username: string;
  full_name: string | null;
  hashed_password: string;
  is_active: ColumnType<boolean, boolean | undefined, boolean>;
  is_superuser: ColumnType<boolean, boolean | undefined, boolean>;
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
}

export interface GatewayDb {
  users: UsersTable;
  refresh_tokens: RefreshTokensTable;
  idempotency_keys: IdempotencyKeysTable;
}

export function openDatabase(url: string, max = 10): Kysely<GatewayDb> {
  const pool = new pg.Pool({ connectionString: url, max, idle_in_transaction_session_timeout: 10_000 });
  // An idle client whose connection the server ended (restart, failover) emits here; without a
  // listener that would crash the process. The pool replaces the client on the next query.
  pool.on("error", (error) => log.warn(errorFields(error), "Idle PostgreSQL connection lost"));
  return new Kysely<GatewayDb>({ dialect: new PostgresDialect({ pool }) });
}
