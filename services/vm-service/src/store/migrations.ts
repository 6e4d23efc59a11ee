import { type Kysely, sql } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";

/**
 * The service's own tables (read model, host registry, deadlines), numbered; never edit one that has
 * run, add the next. The event store's tables (events, outbox, inbox) are @mikrom/eventstore's.
 */
const migrations: Record<string, Migration> = {
  "0001_vm_reads": {
    async up(db: Kysely<unknown>): Promise<void> {
      await sql`
        CREATE TABLE vms (
          vm_id text PRIMARY KEY,
          user_id int NOT NULL,
          name text NOT NULL,
          description text,
          vcpu_count int NOT NULL,
          memory_mb int NOT NULL,
          ip_address text,
          status text NOT NULL,
          error_message text,
          host text,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL,
          deleted boolean NOT NULL DEFAULT false
        );
        CREATE INDEX vms_by_user ON vms (user_id, created_at DESC) WHERE NOT deleted;
        CREATE INDEX vms_by_time ON vms (created_at DESC) WHERE NOT deleted;
        CREATE INDEX vms_by_host ON vms (host) WHERE NOT deleted AND host IS NOT NULL;
        CREATE TABLE hosts (
          host_id text PRIMARY KEY,
          driver text NOT NULL,
          vcpus int NOT NULL,
          memory_mb int NOT NULL,
          last_seen timestamptz NOT NULL,
          live boolean NOT NULL,
          used_vcpus int NOT NULL DEFAULT 0,
          used_memory_mb int NOT NULL DEFAULT 0
        );
        CREATE TABLE deadlines (
          vm_id text PRIMARY KEY,
          step text NOT NULL,
          timeout_ms int NOT NULL,
          due_at timestamptz NOT NULL
        );
        CREATE INDEX deadlines_due ON deadlines (due_at);
      `.execute(db);
    },
  },
  "0002_host_reachability_and_resends": {
    async up(db: Kysely<unknown>): Promise<void> {
      // A silent host is unreachable before it is lost; `last_seen` is when a heartbeat arrived by
      // this service's clock, `stopped_at` the host's own time of its last HostStopped (to order the
      // host's own messages, never to compare clocks).
      await sql`
        ALTER TABLE hosts
          ADD COLUMN status text NOT NULL DEFAULT 'up' CHECK (status IN ('up', 'unreachable', 'lost')),
          ADD COLUMN unreachable_since timestamptz,
          ADD COLUMN stopped_at timestamptz;
        UPDATE hosts SET status = CASE WHEN live THEN 'up' ELSE 'lost' END;
        ALTER TABLE hosts DROP COLUMN live;
        ALTER TABLE deadlines
          ADD COLUMN resend_at timestamptz,
          ADD COLUMN resends int NOT NULL DEFAULT 0;
        CREATE INDEX deadlines_resend ON deadlines (resend_at);
        -- The step's command: its deadline counts from when it first went out.
        ALTER TABLE deadlines ADD COLUMN command_id uuid;
      `.execute(db);
    },
  },
  "0003_host_vm_count": {
    async up(db: Kysely<unknown>): Promise<void> {
      // Placement balances the number of VMs per host too (domain/hosts.ts pickHost).
      await sql`
        ALTER TABLE hosts ADD COLUMN placed_vms int NOT NULL DEFAULT 0;
        UPDATE hosts SET placed_vms =
          (SELECT count(*) FROM vms WHERE vms.host = hosts.host_id AND NOT vms.deleted);
      `.execute(db);
    },
  },
  "0004_list_keys": {
    async up(db: Kysely<unknown>): Promise<void> {
      // The list's whole order, so that a keyset page (`(created_at, vm_id) < (…)`) is one index
      // range, read from its start; the indexes on `created_at` alone left vm_id to a sort and a
      // user's page to a filter over everyone's VMs. They are a prefix of these: dropped.
      await sql`
        CREATE INDEX vms_list ON vms (created_at DESC, vm_id DESC) WHERE NOT deleted;
        CREATE INDEX vms_list_by_user ON vms (user_id, created_at DESC, vm_id DESC) WHERE NOT deleted;
        DROP INDEX vms_by_time;
        DROP INDEX vms_by_user;
      `.execute(db);
    },
  },
  "0005_host_presence": {
    async up(db: Kysely<unknown>): Promise<void> {
      // What the hosts route shows; heartbeats are no longer events, so no log keeps them.
      await sql`
        ALTER TABLE hosts ADD COLUMN registered_at timestamptz, ADD COLUMN running_vms int;
      `.execute(db);
    },
  },
};

export const vmMigrations: MigrationProvider = { getMigrations: async () => migrations };
