import { sql } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";

/**
 * The agent's one table: the VMs this host holds. A row outlives its VM (status `destroyed`) so that
 * its event stream's version, and the answer to a repeated DestroyVm, are never lost.
 */
const m001: Migration = {
  async up(db) {
    await sql`
      CREATE TABLE instances (
        vm_id text PRIMARY KEY,
        status text NOT NULL
          CHECK (status IN ('booting', 'running', 'stopped', 'failed', 'lost', 'destroyed')),
        driver text NOT NULL,
        -- What BootVm asked for: ResumeVm and RebootVm boot it again.
        spec jsonb NOT NULL,
        -- The driver's record (drivers/driver.ts Instance), handed back to adopt() after a restart.
        instance jsonb,
        -- Copied from the record for operators reading the table.
        pid integer,
        socket text,
        console_log text,
        -- Version of the VM's event stream (vm-<id>) in this database.
        stream_version integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`.execute(db);
    await sql`CREATE INDEX instances_live ON instances (status) WHERE status <> 'destroyed'`.execute(db);
  },
  async down(db) {
    await sql`DROP TABLE instances`.execute(db);
  },
};

/**
 * The command whose driver work is under way, written before the driver is called and cleared with
 * the answer: after the agent's own crash, a VM whose process ended meanwhile was ended by that
 * command (a stop, a destroy, a reboot), and is not reported lost; the command is redelivered.
 */
const m002: Migration = {
  async up(db) {
    await sql`ALTER TABLE instances ADD COLUMN operation text`.execute(db);
  },
  async down(db) {
    await sql`ALTER TABLE instances DROP COLUMN operation`.execute(db);
  },
};

export const provisionerMigrations: MigrationProvider = {
  getMigrations: async () => ({ "001-instances": m001, "002-operation": m002 }),
};
