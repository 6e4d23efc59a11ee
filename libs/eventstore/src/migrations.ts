import { type Kysely, sql } from "kysely";
import { type Migration, type MigrationProvider, Migrator } from "kysely/migration";

/** The library's tables live in their own migration history, so a service's migrations never collide with them. */
export const EVENT_STORE_MIGRATION_TABLE = "mikrom_eventstore_migration";
export const SERVICE_MIGRATION_TABLE = "service_migration";

const eventStore0001: Migration = {
  async up(db) {
    await sql`
      CREATE TABLE events (
        global_position bigserial PRIMARY KEY,
        event_id uuid NOT NULL,
        stream_id text NOT NULL,
        stream_version integer NOT NULL CHECK (stream_version > 0),
        type text NOT NULL,
        schema_version integer NOT NULL,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        recorded_at timestamptz NOT NULL DEFAULT now(),
        tx_id xid8 NOT NULL,
        CONSTRAINT events_event_id_unique UNIQUE (event_id),
        -- tx_id rides along so an append finds the stream's head (version and tx) from the index alone
        CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version) INCLUDE (tx_id)
      )`.execute(db);
    // The order global readers follow: see Checkpoint in event.ts.
    await sql`CREATE INDEX events_tx_order ON events (tx_id, global_position)`.execute(db);

    // Pending messages. A row is deleted once JetStream has acknowledged it: its presence is "not sent".
    await sql`
      CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        message_id uuid NOT NULL,
        subject text NOT NULL,
        data jsonb NOT NULL,
        headers jsonb NOT NULL,
        carrier jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
      )`.execute(db);

    await sql`
      CREATE TABLE inbox (
        consumer text NOT NULL,
        message_id text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, message_id)
      )`.execute(db);

    await sql`
      CREATE TABLE projection_checkpoints (
        name text PRIMARY KEY,
        tx_id xid8 NOT NULL DEFAULT '0',
        position bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`.execute(db);

    // One row: whether the relay holding the lease is asleep, waiting for a NOTIFY (see append.ts).
    await sql`
      CREATE TABLE outbox_relay (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        idle boolean NOT NULL DEFAULT false
      )`.execute(db);
    await sql`INSERT INTO outbox_relay DEFAULT VALUES`.execute(db);
  },
  async down(db) {
    await sql`DROP TABLE outbox_relay, projection_checkpoints, inbox, outbox, events`.execute(db);
  },
};

/**
 * Sent rows are kept a while (sent_at set, pruned by the relay): after a NATS crash that lost what it
 * had acknowledged, the relay sends the recent ones again; and a message handled once and delivered
 * again is answered again with what it caused (its rows found by their causation id).
 */
const eventStore0002: Migration = {
  async up(db) {
    await sql`ALTER TABLE outbox ADD COLUMN sent_at timestamptz`.execute(db);
    await sql`CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL`.execute(db);
    await sql`CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL`.execute(db);
    await sql`CREATE INDEX outbox_causation ON outbox ((headers->>'Mikrom-Causation-Id'))`.execute(db);
  },
  async down(db) {
    await sql`DROP INDEX outbox_unsent, outbox_sent, outbox_causation`.execute(db);
    await sql`ALTER TABLE outbox DROP COLUMN sent_at`.execute(db);
  },
};

/** When a message first went out: a deadline counts from there, not from before it could be sent. */
const eventStore0003: Migration = {
  async up(db) {
    await sql`CREATE INDEX outbox_message ON outbox (message_id)`.execute(db);
  },
  async down(db) {
    await sql`DROP INDEX outbox_message`.execute(db);
  },
};

/** The library's migrations, defined in code. */
export const eventStoreMigrations: MigrationProvider = {
  getMigrations: async () => ({
    "0001_event_store": eventStore0001,
    "0002_outbox_kept": eventStore0002,
    "0003_outbox_by_message": eventStore0003,
  }),
};

export class MigrationFailed extends Error {
  override readonly name = "MigrationFailed";
  readonly migration: string | undefined;
  constructor(table: string, migration: string | undefined, cause: unknown) {
    super(`migration ${migration ?? "(setup)"} of ${table} failed: ${String(cause)}`, { cause });
    this.migration = migration;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: migrations run on whatever tables the service has
type AnyDb = Kysely<any>;

async function run(db: AnyDb, provider: MigrationProvider, table: string): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: table,
    migrationLockTableName: `${table}_lock`,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === "Error");
    throw new MigrationFailed(table, failed?.migrationName, error);
  }
  return results.filter((r) => r.status === "Success").map((r) => r.migrationName);
}

export interface MigrateOptions {
  /** The service's own migrations (read models), run after the library's, with their own history table. */
  readonly service?: MigrationProvider;
  readonly serviceTable?: string;
}

/**
 * Brings the database up to date: the event store's tables, then the service's. Safe to call from
 * every replica at start (kysely's migrator takes a lock). Returns the names of the migrations it ran.
 */
export async function migrate(db: AnyDb, options: MigrateOptions = {}): Promise<string[]> {
  const done = await run(db, eventStoreMigrations, EVENT_STORE_MIGRATION_TABLE);
  if (options.service)
    done.push(...(await run(db, options.service, options.serviceTable ?? SERVICE_MIGRATION_TABLE)));
  return done;
}
