import { describe, expect, test } from "@mikrom/testkit";
import { Kysely, PostgresDialect, sql } from "kysely";
import { createPool } from "../src/index.ts";

interface Tables {
  things: { id: string; size: number };
}

describe("the pool's prepared statements", () => {
  test("a statement with parameters is prepared once per connection; one expanding `*` is not, and survives a new column", async ({
    db,
  }) => {
    // One connection: every statement below runs in the same session, whose prepared statements it lists.
    const kysely = new Kysely<Tables>({
      dialect: new PostgresDialect({ pool: createPool(db.url, { max: 1 }) }),
    });
    const prepared = async () =>
      (
        await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements`.execute(kysely)
      ).rows.map((r) => r.statement);
    try {
      await sql`CREATE TABLE things (id text PRIMARY KEY, size integer NOT NULL)`.execute(kysely);
      await kysely.insertInto("things").values({ id: "a", size: 1 }).execute();
      for (let i = 0; i < 3; i++) {
        const row = await kysely
          .selectFrom("things")
          .select(["id", "size"])
          .where("id", "=", "a")
          .executeTakeFirst();
        expect(row).toEqual({ id: "a", size: 1 });
      }
      const all = () => kysely.selectFrom("things").selectAll().where("id", "=", "a").executeTakeFirst();
      expect(await all()).toEqual({ id: "a", size: 1 });

      const statements = (await prepared()).sort();
      expect(statements).toEqual([
        expect.stringContaining('insert into "things"'),
        'select "id", "size" from "things" where "id" = $1',
      ]);

      // Prepared, `select *` would now fail: "cached plan must not change result type".
      await sql`ALTER TABLE things ADD COLUMN colour text`.execute(kysely);
      expect(await all()).toEqual({ id: "a", size: 1, colour: null });
      expect(
        await kysely.selectFrom("things").select(["id", "size"]).where("id", "=", "a").executeTakeFirst(),
      ).toEqual({ id: "a", size: 1 });
    } finally {
      await kysely.destroy();
    }
  });
});
