import { describe, expect, test, withDatabase } from "@mikrom/testkit";
import { sql } from "kysely";
import pg from "pg";
import { type Checkpoint, createProjector, START } from "../src/index.ts";
import { type TallyEvent, tableRows, talliesProjection } from "./fixtures/tally.ts";
import { openTallyStore, type TallyStore, waitFor } from "./support.ts";

const opened = (tallyId: string): TallyEvent => ({ type: "TallyOpened", data: { tallyId, name: tallyId } });
const added = (tallyId: string): TallyEvent => ({
  type: "TallyIncremented",
  data: { tallyId, by: 1, note: null },
});

function gate(): { open(): void; passed: Promise<void> } {
  let open!: () => void;
  const passed = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, passed };
}

/** Reads everything after a checkpoint until `count` events came back (other databases' transactions may hold the horizon a moment). */
async function readUntil(store: TallyStore, after: Checkpoint, count: number) {
  return waitFor(`${count} events readable`, async () => {
    const result = await store.readAll({ after });
    return result.events.length >= count ? result : undefined;
  });
}

describe("reading all events from a checkpoint", () => {
  test("does not skip an event whose transaction commits after a later one", async ({ db }) => {
    const store = await openTallyStore(db.url, { poolSize: 3 });
    const projector = createProjector(store, talliesProjection("tallies_async"));
    try {
      const hold = gate();
      const appended = gate();
      const slow = store.transaction(async (tx) => {
        await tx.append("tally-slow", [opened("slow")], { expectedVersion: 0 });
        appended.open();
        await hold.passed;
      });
      await appended.passed;
      await store.append("tally-fast", [opened("fast")], { expectedVersion: 0 });

      // The hazard: by position, the committed event is all there is, and a checkpoint would pass the slow one.
      const { rows } = await sql<{ stream_id: string }>`
        SELECT stream_id FROM events ORDER BY global_position`.execute(store.db);
      expect(rows.map((r) => r.stream_id)).toEqual(["tally-fast"]);
      expect((await store.readAll()).events).toEqual([]);
      expect(await projector.catchUp()).toBe(0);

      hold.open();
      await slow;
      const { events } = await readUntil(store, START, 2);
      expect(events.map((e) => e.streamId)).toEqual(["tally-slow", "tally-fast"]);
      await waitFor("the projector to apply both", async () => {
        await projector.catchUp();
        return (await tableRows(store.db, "tallies_async")).length === 2;
      });
      expect((await tableRows(store.db, "tallies_async")).map((r) => r.tally_id)).toEqual(["fast", "slow"]);
    } finally {
      await store.close();
    }
  });

  test("reaches an event positioned before the checkpoint when its transaction began later", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 3 });
    try {
      // Transaction "early" takes its id first but appends last; transaction "late" appends first, commits last.
      const earlyHasId = gate();
      const earlyGo = gate();
      const early = store.transaction(async (tx) => {
        await sql`SELECT pg_current_xact_id()`.execute(tx.db);
        earlyHasId.open();
        await earlyGo.passed;
        await tx.append("tally-early", [opened("early")], { expectedVersion: 0 });
      });
      await earlyHasId.passed;
      const lateAppended = gate();
      const lateGo = gate();
      const late = store.transaction(async (tx) => {
        await tx.append("tally-late", [opened("late")], { expectedVersion: 0 });
        lateAppended.open();
        await lateGo.passed;
      });
      await lateAppended.passed;
      earlyGo.open();
      await early;

      const first = await readUntil(store, START, 1);
      expect(first.events.map((e) => e.streamId)).toEqual(["tally-early"]);
      lateGo.open();
      await late;
      const second = await readUntil(store, first.checkpoint, 1);
      expect(second.events.map((e) => e.streamId)).toEqual(["tally-late"]);
      // By position alone the late event lies behind the checkpoint.
      expect(second.events[0]!.globalPosition).toBeLessThan(first.checkpoint.position);
    } finally {
      await store.close();
    }
  });

  test("keeps a stream's events in version order even when the later append's transaction began first", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 3 });
    try {
      const hasId = gate();
      const go = gate();
      const second = store.transaction(async (tx) => {
        await sql`SELECT pg_current_xact_id()`.execute(tx.db);
        hasId.open();
        await go.passed;
        await tx.append("tally-o", [added("o")], { expectedVersion: 1 });
      });
      await hasId.passed;
      await store.append("tally-o", [opened("o")], { expectedVersion: 0 });
      go.open();
      await second;
      const { events } = await readUntil(store, START, 2);
      expect(events.map((e) => [e.streamVersion, e.type])).toEqual([
        [1, "TallyOpened"],
        [2, "TallyIncremented"],
      ]);
    } finally {
      await store.close();
    }
  });

  test("is not held back by a long transaction in another database", async ({ db }) => {
    const store = await openTallyStore(db.url);
    const elsewhere = new pg.Client({ connectionString: withDatabase(db.url, "postgres") });
    await elsewhere.connect();
    try {
      await elsewhere.query("BEGIN");
      await elsewhere.query("SELECT pg_current_xact_id()");
      await store.append("tally-z", [opened("z")], { expectedVersion: 0 });
      expect((await store.readAll()).events.map((e) => e.streamId)).toEqual(["tally-z"]);
    } finally {
      await elsewhere.query("ROLLBACK").catch(() => {});
      await elsewhere.end();
      await store.close();
    }
  });
});
