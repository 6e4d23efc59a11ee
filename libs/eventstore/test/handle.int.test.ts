import { describe, expect, test } from "@mikrom/testkit";
import { sql } from "kysely";
import pg from "pg";
import { ConcurrencyConflict, isRefusal } from "../src/index.ts";
import { type TallyCommand, tableRows, talliesProjection, tally, tallyStream } from "./fixtures/tally.ts";
import { openTallyStore, waitFor } from "./support.ts";

const run = (cmd: TallyCommand) => (state: Parameters<typeof tally.decide>[1]) => tally.decide(cmd, state);

/** Holds version 1 of a stream in a transaction that has not committed, as a racing writer would. */
async function racingWriter(url: string, streamId: string): Promise<{ commit(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("BEGIN");
  await client.query(
    `INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, tx_id)
     VALUES (gen_random_uuid(), $1, 1, 'TallyOpened', 1, '{"tallyId":"r","name":"racer"}', pg_current_xact_id())`,
    [streamId],
  );
  return {
    async commit() {
      await client.query("COMMIT");
      await client.end();
    },
  };
}

async function someoneWaitsOnALock(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    return rows.length > 0;
  } finally {
    await client.end();
  }
}

describe("store.handle", () => {
  test("loads the stream, decides and appends; a refusal appends nothing", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      const open = await store.handle(tallyStream("h"), run({ type: "Open", tallyId: "h", name: "h" }));
      expect(open).toMatchObject({ outcome: "accepted", version: 1, state: { status: "open", total: 0 } });
      const add = await store.handle(tallyStream("h"), run({ type: "Add", tallyId: "h", by: 5 }));
      expect(add).toMatchObject({ outcome: "accepted", version: 2, state: { total: 5 } });
      const again = await store.handle(tallyStream("h"), run({ type: "Open", tallyId: "h", name: "h" }));
      expect(again).toEqual({
        outcome: "refused",
        refusal: { kind: "refusal", code: "conflict", reason: "tally h already exists" },
        state: { status: "open", total: 5 },
        version: 2,
      });
      expect((await store.readStream("tally-h")).version).toBe(2);
    } finally {
      await store.close();
    }
  });

  test("a decision with no events appends nothing and reports the current version", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.handle(tallyStream("n"), run({ type: "Open", tallyId: "n", name: "n" }));
      const result = await store.handle(tallyStream("n"), () => []);
      expect(result).toMatchObject({
        outcome: "accepted",
        decided: [],
        events: [],
        before: { status: "open", total: 0 },
        state: { status: "open", total: 0 },
        version: 1,
      });
      expect(result.outcome === "accepted" && result.history.map((e) => e.type)).toEqual(["TallyOpened"]);
    } finally {
      await store.close();
    }
  });

  test("a decision's messages go out with its events; a refusal of a named command is answered", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url);
    const outbox = () =>
      sql<{ subject: string; data: unknown }>`SELECT subject, data FROM outbox ORDER BY id`
        .execute(store.db)
        .then((r) => r.rows);
    try {
      const decide = (state: Parameters<typeof tally.decide>[1]) => {
        const events = tally.decide({ type: "Open", tallyId: "m", name: "m" }, state);
        return isRefusal(events) ? events : { events, note: "opened" };
      };
      const opened = await store.handle(tallyStream("m"), decide, {
        command: "Open",
        messages: (d) => [
          { subject: "mikrom.cmd.x.note", type: "Note", schemaVersion: 1, data: { note: d.note } },
        ],
      });
      expect(opened).toMatchObject({ outcome: "accepted", decided: { note: "opened" }, version: 1 });
      expect(await outbox()).toEqual([
        { subject: "mikrom.evt.tally.m.TallyOpened", data: { tallyId: "m", name: "m" } },
        { subject: "mikrom.cmd.x.note", data: { note: "opened" } },
      ]);

      // Unnamed, a refusal is only returned; named, it is answered as CommandRejected.
      await store.handle(tallyStream("m"), decide);
      expect(await outbox()).toHaveLength(2);
      const refused = await store.handle(tallyStream("m"), decide, { command: "Open" });
      expect(refused).toMatchObject({ outcome: "refused", refusal: { code: "conflict" } });
      expect((await outbox()).at(-1)).toEqual({
        subject: "mikrom.evt.tally.m.CommandRejected",
        data: { entityId: "m", command: "Open", code: "conflict", reason: "tally m already exists" },
      });
    } finally {
      await store.close();
    }
  });

  test("after losing a race it reloads and decides again on the winner's events", async ({ db }) => {
    const store = await openTallyStore(db.url);
    const racer = await racingWriter(db.url, "tally-r");
    try {
      const seen: string[] = [];
      const handled = store.handle(tallyStream("r"), (state) => {
        seen.push(state.status);
        return state.status === "none"
          ? [{ type: "TallyOpened", data: { tallyId: "r", name: "mine" } }]
          : [{ type: "TallyIncremented", data: { tallyId: "r", by: 1, note: null } }];
      });
      await waitFor("the append to wait on the racing writer", () => someoneWaitsOnALock(db.url));
      await racer.commit();
      expect(await handled).toMatchObject({
        outcome: "accepted",
        version: 2,
        state: { status: "open", total: 1 },
      });
      expect(seen).toEqual(["none", "open"]);
    } finally {
      await store.close();
    }
  });

  test("when conflicts outlast its retries it throws ConcurrencyConflict", async ({ db }) => {
    const store = await openTallyStore(db.url);
    const racer = await racingWriter(db.url, "tally-x");
    try {
      const handled = store.handle(tallyStream("x"), run({ type: "Open", tallyId: "x", name: "x" }), {
        maxRetries: 0,
      });
      const outcome = handled.catch((error: unknown) => error);
      await waitFor("the append to wait on the racing writer", () => someoneWaitsOnALock(db.url));
      await racer.commit();
      expect(await outcome).toBeInstanceOf(ConcurrencyConflict);
    } finally {
      await store.close();
    }
  });

  test("concurrent commands on one stream all land, one after another, through retries", async ({ db }) => {
    const store = await openTallyStore(db.url, { poolSize: 4 });
    try {
      await store.handle(tallyStream("c"), run({ type: "Open", tallyId: "c", name: "c" }));
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.handle(tallyStream("c"), run({ type: "Add", tallyId: "c", by: i + 1 }), { maxRetries: 20 }),
        ),
      );
      expect(results.every((r) => r.outcome === "accepted")).toBe(true);
      const { version, events } = await store.readStream("tally-c");
      expect(version).toBe(9);
      expect(events.map((e) => e.streamVersion)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(
        results
          .map((r) => r.state.total)
          .sort((a, b) => a - b)
          .at(-1),
      ).toBe(36);
    } finally {
      await store.close();
    }
  });
});

describe("inline projections and transactions", () => {
  test("an inline projection is written with the events, and its failure rolls the append back", async ({
    db,
  }) => {
    const inline = talliesProjection("tallies_inline");
    const failing = {
      ...inline,
      async apply(...args: Parameters<typeof inline.apply>) {
        if (args[1].some((e) => e.data.tallyId === "boom")) throw new Error("projection failed");
        await inline.apply(...args);
      },
    };
    const store = await openTallyStore(db.url, { projections: [failing] });
    try {
      await store.handle(tallyStream("p"), run({ type: "Open", tallyId: "p", name: "pea" }));
      await store.handle(tallyStream("p"), run({ type: "Add", tallyId: "p", by: 2 }));
      expect(await tableRows(store.db, "tallies_inline")).toEqual([
        { tally_id: "p", name: "pea", total: 2, increments: 1, status: "open", last_version: 2 },
      ]);
      await expect(
        store.handle(tallyStream("boom"), run({ type: "Open", tallyId: "boom", name: "b" })),
      ).rejects.toThrow("projection failed");
      expect((await store.readStream("tally-boom")).version).toBe(0);
      expect(await store.outboxBacklog()).toBe(2);
    } finally {
      await store.close();
    }
  });

  test("a unit of work commits its appends, messages and table writes together, or none of them", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url);
    try {
      await expect(
        store.transaction(async (tx) => {
          await tx.handle(tallyStream("t1"), run({ type: "Open", tallyId: "t1", name: "one" }));
          await tx.send([{ subject: "mikrom.cmd.x.y", type: "Y", schemaVersion: 1, data: {} }]);
          await sql`INSERT INTO tallies_async VALUES ('t1', 'one', 0, 0, 'open', 1)`.execute(tx.db);
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect((await store.readStream("tally-t1")).version).toBe(0);
      expect(await store.outboxBacklog()).toBe(0);
      expect(await tableRows(store.db, "tallies_async")).toEqual([]);

      await store.transaction(async (tx) => {
        await tx.handle(tallyStream("t1"), run({ type: "Open", tallyId: "t1", name: "one" }));
        await tx.handle(tallyStream("t2"), run({ type: "Open", tallyId: "t2", name: "two" }));
        await tx.send([{ subject: "mikrom.cmd.x.y", type: "Y", schemaVersion: 1, data: {} }]);
      });
      expect((await store.readStream("tally-t2")).version).toBe(1);
      expect(await store.outboxBacklog()).toBe(3);
    } finally {
      await store.close();
    }
  });

  test("many more concurrent handlers than pool connections all finish instead of hanging", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, {
      poolSize: 2,
      projections: [talliesProjection("tallies_inline")],
    });
    try {
      const ids = Array.from({ length: 40 }, (_, i) => `q${i}`);
      await Promise.all(
        ids.map((id) =>
          store.transaction(async (tx) => {
            await tx.handle(tallyStream(id), run({ type: "Open", tallyId: id, name: id }));
            await tx.handle(tallyStream(id), run({ type: "Add", tallyId: id, by: 1 }));
          }),
        ),
      );
      expect((await tableRows(store.db, "tallies_inline")).map((r) => r.total)).toEqual(ids.map(() => 1));
      const { rows } = await sql<{ t: string }>`
        SELECT current_setting('idle_in_transaction_session_timeout') AS t`.execute(store.db);
      expect(rows[0]!.t).toBe("1min");
    } finally {
      await store.close();
    }
  });
});
