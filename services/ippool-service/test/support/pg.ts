import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { migrateIppool } from "../../src/store/migrate.ts";
import type { Sql } from "../../src/store/sql.ts";

export interface TestStore {
  pool: pg.Pool;
  // biome-ignore lint/suspicious/noExplicitAny: untyped tables, SQL written by hand
  db: Kysely<any>;
  /** Runs fn in its own transaction on its own connection; rolls back on throw. */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function openStore(url: string, max = 20): Promise<TestStore> {
  const pool = quiet(new pg.Pool({ connectionString: url, max }));
  const db = new Kysely({
    dialect: new PostgresDialect({ pool: quiet(new pg.Pool({ connectionString: url, max: 2 })) }),
  });
  await migrateIppool(db);
  return {
    pool,
    db,
    async tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const result = await fn(client as unknown as Sql);
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async close() {
      await pool.end();
      await db.destroy();
    },
  };
}

/** The test database is dropped WITH (FORCE) at the end; a socket still closing then must not crash the run. */
function quiet(pool: pg.Pool): pg.Pool {
  pool.on("error", () => {});
  return pool;
}
