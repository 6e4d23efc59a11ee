import { type Kysely, sql } from "kysely";
import { type Migration, type MigrationProvider, Migrator } from "kysely/migration";
import type { GatewayDb } from "./db.ts";

/** Numbered, append-only: never edit a migration that has run somewhere; add the next one. */
const migrations: Record<string, Migration> = {
  "001_users": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("users")
        .addColumn("id", "serial", (c) => c.primaryKey())
        .addColumn("email", "text", (c) => c.notNull())
        .addColumn("username", "text", (c) => c.notNull())
        .addColumn("full_name", "text")
        .addColumn("hashed_password", "text", (c) => c.notNull())
        .addColumn("is_active", "boolean", (c) => c.notNull().defaultTo(true))
        .addColumn("is_superuser", "boolean", (c) => c.notNull().defaultTo(false))
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      // Case-insensitive uniqueness: "Ana@x.io" and "ana@x.io" are one account.
      await sql`CREATE UNIQUE INDEX users_email_key ON users (lower(email))`.execute(db);
      await sql`CREATE UNIQUE INDEX users_username_key ON users (lower(username))`.execute(db);

      await db.schema
        .createTable("refresh_tokens")
        .addColumn("jti", "text", (c) => c.primaryKey())
        .addColumn("user_id", "integer", (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("expires_at", "timestamptz", (c) => c.notNull())
        .addColumn("used_at", "timestamptz")
        .addColumn("revoked_at", "timestamptz")
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex("refresh_tokens_user").on("refresh_tokens").column("user_id").execute();

      await db.schema
        .createTable("idempotency_keys")
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("status", "integer")
        .addColumn("headers", "jsonb")
        .addColumn("body", "text")
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint("idempotency_keys_pk", ["scope", "key"])
        .execute();
      await db.schema
        .createIndex("idempotency_keys_created")
        .on("idempotency_keys")
        .column("created_at")
        .execute();
    },
  },
  "002_commands": {
    async up(db: Kysely<unknown>): Promise<void> {
      // A claim whose request died is taken over once its lease runs out (not held for a day).
      await sql`ALTER TABLE idempotency_keys ADD COLUMN locked_until timestamptz`.execute(db);
      // Every command the gateway answered for, kept until its outcome is known, and sent again
      // (same id) until then: a 202 is a promise, even when NATS loses what it acknowledged.
      await sql`
        CREATE TABLE commands (
          command_id uuid PRIMARY KEY,
          user_id integer NOT NULL,
          service text NOT NULL,
          verb text NOT NULL,
          type text NOT NULL,
          context text NOT NULL,
          entity_id text NOT NULL,
          data jsonb NOT NULL,
          carrier jsonb NOT NULL,
          correlation_id text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          attempts integer NOT NULL DEFAULT 0,
          next_send_at timestamptz NOT NULL,
          outcome text CHECK (outcome IN ('accepted', 'rejected')),
          outcome_type text,
          code text,
          reason text,
          settled_at timestamptz
        )`.execute(db);
      await sql`CREATE INDEX commands_due ON commands (next_send_at) WHERE settled_at IS NULL`.execute(db);
      await sql`CREATE INDEX commands_entity ON commands (entity_id, created_at)`.execute(db);
      await sql`CREATE INDEX commands_settled ON commands (settled_at) WHERE settled_at IS NOT NULL`.execute(
        db,
      );
    },
  },
  "003_token_generation": {
    async up(db: Kysely<unknown>): Promise<void> {
      // Access tokens are not stored; ending a user's sessions raises this number instead, and a
      // token carrying a lower one is refused (auth/middleware.ts).
      await sql`ALTER TABLE users ADD COLUMN token_generation integer NOT NULL DEFAULT 0`.execute(db);
    },
  },
  "004_invites": {
    async up(db: Kysely<unknown>): Promise<void> {
      await sql`
        CREATE TABLE invites (
          token_hash text PRIMARY KEY,
          created_by integer REFERENCES users (id) ON DELETE SET NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          expires_at timestamptz NOT NULL,
          used_at timestamptz,
          used_by integer REFERENCES users (id) ON DELETE SET NULL
        )`.execute(db);
    },
  },
  "005_quotas": {
    async up(db: Kysely<unknown>): Promise<void> {
      // Null: vm-service's default. Sent with each CreateVm; vm-service checks them under the user's lock.
      await sql`ALTER TABLE users ADD COLUMN max_vms integer, ADD COLUMN max_vcpus integer, ADD COLUMN max_memory_mb integer`.execute(
        db,
      );
    },
  },
  "006_rate_limits": {
    async up(db: Kysely<unknown>): Promise<void> {
      // rate-limiter-flexible's PostgreSQL layout (key, points, expire in epoch ms), made here so no
      // replica runs DDL at start; `key` is text, as a login name may be long.
      await sql`
        CREATE TABLE rate_limits (
          key text PRIMARY KEY,
          points integer NOT NULL DEFAULT 0,
          expire bigint
        )`.execute(db);
      await sql`CREATE INDEX rate_limits_expire ON rate_limits (expire)`.execute(db);
    },
  },
  "007_held_requests": {
    async up(db: Kysely<unknown>): Promise<void> {
      // One row per slot in use: the key is what keeps two replicas from holding the same slot.
      await sql`
        CREATE TABLE held_requests (
          user_id integer NOT NULL,
          kind text NOT NULL,
          slot integer NOT NULL,
          replica uuid NOT NULL,
          expires_at timestamptz NOT NULL,
          PRIMARY KEY (user_id, kind, slot)
        )`.execute(db);
      await sql`CREATE INDEX held_requests_by_replica ON held_requests (replica)`.execute(db);
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

export async function migrate(db: Kysely<GatewayDb>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new Error(`gateway migration ${failed} failed: ${(error as Error).message}`, { cause: error });
  }
}
