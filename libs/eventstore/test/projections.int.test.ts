import { describe, expect, test } from "@mikrom/testkit";
import fc from "fast-check";
import { sql } from "kysely";
import { createProjector, fold } from "../src/index.ts";
import { type TallyCommand, tableRows, talliesProjection, tally, tallyStream } from "./fixtures/tally.ts";
import { openTallyStore, waitFor } from "./support.ts";

const ids = ["a", "b", "c", "d", "e"];
const command: fc.Arbitrary<TallyCommand> = fc.oneof(
  {
    arbitrary: fc.record({
      type: fc.constant("Open" as const),
      tallyId: fc.constantFrom(...ids),
      name: fc.constantFrom("x", "y"),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      type: fc.constant("Add" as const),
      tallyId: fc.constantFrom(...ids),
      by: fc.integer({ min: 1, max: 9 }),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({ type: fc.constant("Close" as const), tallyId: fc.constantFrom(...ids) }),
    weight: 1,
  },
);
/** Commands in a few lanes that run concurrently, so appends race and retry. */
const lanes = fc.array(fc.array(command, { minLength: 5, maxLength: 25 }), { minLength: 2, maxLength: 4 });

describe("projections", () => {
  test("rebuilt from the events, inline and asynchronous projections equal the live inline one after random commands", async ({
    db,
  }) => {
    const inline = talliesProjection("tallies_inline");
    const store = await openTallyStore(db.url, { projections: [inline], poolSize: 4 });
    try {
      await fc.assert(
        fc.asyncProperty(lanes, async (work) => {
          await sql`TRUNCATE events, outbox, tallies_inline, tallies_async, projection_checkpoints`.execute(
            store.db,
          );
          await Promise.all(
            work.map(async (lane) => {
              for (const cmd of lane) {
                await store.handle(tallyStream(cmd.tallyId), (state) => tally.decide(cmd, state), {
                  maxRetries: 10,
                });
              }
            }),
          );
          const live = await tableRows(store.db, "tallies_inline");

          // The projection agrees with the decider's own view of each stream.
          for (const row of live) {
            const { events } = await store.readStream(`tally-${row.tally_id}`);
            expect(fold(tally, events)).toEqual({ status: row.status, total: row.total });
          }

          const replayed = await store.rebuild(inline);
          expect(await tableRows(store.db, "tallies_inline")).toEqual(live);

          const projector = createProjector(store, talliesProjection("tallies_async"), { batchSize: 7 });
          let applied = 0;
          await waitFor("the asynchronous projection to catch up", async () => {
            applied += await projector.catchUp();
            return applied === replayed;
          });
          expect(await tableRows(store.db, "tallies_async")).toEqual(live);
          expect(await projector.rebuild()).toBeLessThanOrEqual(replayed);
          await waitFor("the rebuilt asynchronous projection to catch up", async () => {
            await projector.catchUp();
            const rows = await tableRows(store.db, "tallies_async");
            return JSON.stringify(rows) === JSON.stringify(live);
          });
        }),
        { numRuns: 5 },
      );
    } finally {
      await store.close();
    }
  });

  test("an inline projection rebuilt while commands keep coming matches the live one", async ({ db }) => {
    const inline = talliesProjection("tallies_inline");
    const store = await openTallyStore(db.url, { projections: [inline], poolSize: 4 });
    try {
      for (const id of ids)
        await store.handle(tallyStream(id), (s) => tally.decide({ type: "Open", tallyId: id, name: id }, s));
      const adds = Promise.all(
        Array.from({ length: 60 }, (_, i) => {
          const cmd: TallyCommand = { type: "Add", tallyId: ids[i % ids.length]!, by: 1 + (i % 3) };
          return store.handle(tallyStream(cmd.tallyId), (s) => tally.decide(cmd, s), { maxRetries: 30 });
        }),
      );
      await store.rebuild(inline);
      await adds;
      const live = await tableRows(store.db, "tallies_inline");
      expect(live.reduce((sum, r) => sum + r.increments, 0)).toBe(60);
      await store.rebuild(inline);
      expect(await tableRows(store.db, "tallies_inline")).toEqual(live);
    } finally {
      await store.close();
    }
  });
});
