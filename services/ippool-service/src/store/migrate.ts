import type { Kysely } from "kysely";
import { type Migration, type MigrationProvider, Migrator } from "kysely/migration";
import * as m001 from "./migrations/001-pools-and-allocations.ts";
import type { IppoolTables } from "./tables.ts";

const migrations: Record<string, Migration> = {
  "001-pools-and-allocations": m001,
};

/** This service's migrations, for the event store's `migrations` option (run after its own). */
export const ippoolMigrations: MigrationProvider = { getMigrations: async () => migrations };

/**
 * Brings this service's tables up to date without the event store (store tests, the benchmark). Its own migration table, so the event store's
 * migrations in the same database never collide with these; kysely's lock table lets several
 * instances start at once.
 */
export async function migrateIppool(db: Kysely<IppoolTables>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: ippoolMigrations,
    migrationTableName: "ippool_migration",
    migrationLockTableName: "ippool_migration_lock",
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new Error(
      `ippool migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
}
