import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { migrateIppool } from "../../src/store/migrate.ts";
import type { Db, IppoolTables } from "../../src/store/tables.ts";

export interface TestStore {
  db: Db;
  /** Runs fn in its own transaction on its own connection; rolls back on throw. */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function openStore(url: string, max = 20): Promise<TestStore> {
  const db = new Kysely<IppoolTables>({
    dialect: new PostgresDialect({ pool: quiet(new pg.Pool({ connectionString: url, max })) }),
  });
  await migrateIppool(db);
  return {
    db,
    tx: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

/** The test database is dropped WITH (FORCE) at the end; a socket still closing then must not crash the run. */
function quiet(pool: pg.Pool): pg.Pool {
  pool.on("error", () => {});
  return pool;
}
