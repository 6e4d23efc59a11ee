import { openDatabase, type ServiceDatabase } from "@mikrom/runtime";
import { type Kysely, sql } from "kysely";
import { type Migration, Migrator } from "kysely/migration";

const migrations: Record<string, Migration> = {
  "001-audit-log": {
    async up(db) {
      // Append-only: the service only ever inserts; the event id makes a redelivery a no-op.
      await sql`
        CREATE TABLE audit_log (
          position bigserial PRIMARY KEY,
          -- The event's place in the events stream: the order the system saw them in.
          stream_sequence bigint NOT NULL,
          event_id text NOT NULL UNIQUE,
          type text NOT NULL,
          context text NOT NULL,
          entity_id text NOT NULL,
          vm_id text,
          user_id integer,
          user_name text,
          trace_id text,
          correlation_id text,
          recorded_at timestamptz NOT NULL DEFAULT now(),
          data jsonb NOT NULL
        )`.execute(db);
      await sql`CREATE INDEX audit_log_vm ON audit_log (vm_id, stream_sequence)`.execute(db);
      await sql`CREATE INDEX audit_log_user ON audit_log (user_id, stream_sequence)`.execute(db);
      await sql`CREATE INDEX audit_log_type ON audit_log (type, stream_sequence)`.execute(db);
      await sql`CREATE INDEX audit_log_time ON audit_log (recorded_at)`.execute(db);
      await sql`
        CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$`.execute(db);
      await sql`
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only()`.execute(db);
    },
  },
};

/**
 * Brings the log's schema up to date. The service runs it at every start: with the role deployments
 * give it (INSERT and SELECT only, see auditDatabase) it finds nothing to do, and a migration it may
 * not run says who runs it.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations run before any table exists, on any schema
export async function migrate(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error } = await migrator.migrateToLatest();
  if ((error as { code?: string } | undefined)?.code === "42501") {
    throw new Error(
      "the audit log's migrations run as its owner, in the database setup, and this role may not: " +
        "run the setup (services/audit/src/setup-databases.ts; compose's db-setup, the mikrom-db-setup Job)",
      { cause: error },
    );
  }
  if (error) throw error;
}

/**
 * The audit database as every deployment's setup makes it: owned by `<database>_owner`, a role no
 * one logs in as, which the setup acts as to run these migrations. The service's role may only add
 * to the log and read it (INSERT and SELECT, and the serial's sequence): it cannot UPDATE, DELETE,
 * TRUNCATE, ALTER or DROP the log, nor drop or disable the trigger that keeps it append-only.
 */
export function auditDatabase(service: ServiceDatabase): ServiceDatabase {
  return {
    ...service,
    owner: {
      role: `${service.database}_owner`,
      tables: ["SELECT", "INSERT"],
      sequences: ["USAGE"],
      async migrate(ownerUrl) {
        const db = openDatabase(ownerUrl, { max: 1, applicationName: "audit-migrations" });
        try {
          await migrate(db);
        } finally {
          await db.destroy();
        }
      },
    },
  };
}
