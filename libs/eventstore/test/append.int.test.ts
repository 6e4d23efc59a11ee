import { ValidationFailed } from "@mikrom/contracts";
import { runInCarrier, withContext } from "@mikrom/telemetry";
import { describe, expect, test } from "@mikrom/testkit";
import { sql } from "kysely";
import pg from "pg";
import { ConcurrencyConflict, UnreadableEvent } from "../src/index.ts";
import type { TallyEvent } from "./fixtures/tally.ts";
import { openTallyStore, waitFor } from "./support.ts";

const opened = (tallyId: string): TallyEvent => ({ type: "TallyOpened", data: { tallyId, name: tallyId } });
const added = (tallyId: string, by = 1): TallyEvent => ({
  type: "TallyIncremented",
  data: { tallyId, by, note: null },
});

describe("appending to a stream", () => {
  test("numbers a new stream's events from 1 and reads them back in order", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      const first = await store.append("tally-a", [opened("a"), added("a", 2)], { expectedVersion: 0 });
      expect(first.nextVersion).toBe(2);
      const second = await store.append("tally-a", [added("a", 3)], { expectedVersion: 2 });
      expect(second.events[0]!.globalPosition).toBeGreaterThan(first.events[1]!.globalPosition);

      const read = await store.readStream("tally-a");
      expect(read.version).toBe(3);
      expect(read.events.map((e) => [e.streamVersion, e.type, e.data])).toEqual([
        [1, "TallyOpened", { tallyId: "a", name: "a" }],
        [2, "TallyIncremented", { tallyId: "a", by: 2, note: null }],
        [3, "TallyIncremented", { tallyId: "a", by: 3, note: null }],
      ]);
      expect(read.events.map((e) => e.id)).toEqual([...first.events, ...second.events].map((e) => e.id));
      expect(await store.readStream("tally-none")).toEqual({ version: 0, events: [] });
      expect(
        (await store.readStream("tally-a", { afterVersion: 2 })).events.map((e) => e.streamVersion),
      ).toEqual([3]);
    } finally {
      await store.close();
    }
  });

  test("reads all events from the start in order, page by page", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.append(
        "tally-g",
        [opened("g"), ...Array.from({ length: 11 }, (_, i) => added("g", i + 1))],
        {
          expectedVersion: 0,
        },
      );
      await store.append("tally-h", [opened("h")], { expectedVersion: 0 });
      const first = await store.readAll({ limit: 10 });
      const second = await store.readAll({ after: first.checkpoint, limit: 10 });
      const third = await store.readAll({ after: second.checkpoint, limit: 10 });
      const all = [...first.events, ...second.events];
      expect(all.map((e) => `${e.streamId}@${e.streamVersion}`)).toEqual([
        ...Array.from({ length: 12 }, (_, i) => `tally-g@${i + 1}`),
        "tally-h@1",
      ]);
      expect(all.map((e) => e.globalPosition)).toEqual(all.map((_, i) => BigInt(i + 1)));
      expect(third).toEqual({ events: [], checkpoint: second.checkpoint });
    } finally {
      await store.close();
    }
  });

  test("of 50 concurrent appends with the same expected version exactly one succeeds, the rest conflict", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 10 });
    try {
      await store.append("tally-race", [opened("race"), added("race"), added("race")], {
        expectedVersion: 0,
      });
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          store.append("tally-race", [added("race", i + 1)], { expectedVersion: 3 }),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(49);
      for (const r of lost) {
        expect(r.reason).toBeInstanceOf(ConcurrencyConflict);
        expect(r.reason).toMatchObject({ streamId: "tally-race", expectedVersion: 3 });
      }
      const { rows } = await sql<{ v: number }>`
        SELECT stream_version AS v FROM events WHERE stream_id = 'tally-race' ORDER BY global_position`.execute(
        store.db,
      );
      expect(rows.map((r) => r.v)).toEqual([1, 2, 3, 4]);
    } finally {
      await store.close();
    }
  });

  test("of 50 concurrent creates of the same stream exactly one wins", async ({ db }) => {
    const store = await openTallyStore(db.url, { poolSize: 10 });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () => store.append("tally-new", [opened("new")], { expectedVersion: 0 })),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const reasons = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
      expect(reasons).toHaveLength(49);
      expect(reasons.every((e) => e instanceof ConcurrencyConflict && e.expectedVersion === 0)).toBe(true);
      expect((await store.readStream("tally-new")).version).toBe(1);
    } finally {
      await store.close();
    }
  });

  test("an expected version behind or ahead of the stream is a conflict and writes nothing", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.append("tally-b", [opened("b")], { expectedVersion: 0 });
      await expect(store.append("tally-b", [added("b")], { expectedVersion: 5 })).rejects.toMatchObject({
        name: "ConcurrencyConflict",
        expectedVersion: 5,
        actualVersion: 1,
      });
      await expect(store.append("tally-b", [opened("b")], { expectedVersion: 0 })).rejects.toBeInstanceOf(
        ConcurrencyConflict,
      );
      expect((await store.readStream("tally-b")).version).toBe(1);
      expect(await store.outboxBacklog()).toBe(1);
    } finally {
      await store.close();
    }
  });

  test("an event that does not match its schema is refused before anything is written", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      const bad = { type: "TallyIncremented", data: { tallyId: "c", by: -1, note: null } } as const;
      await expect(store.append("tally-c", [bad], { expectedVersion: 0 })).rejects.toBeInstanceOf(
        ValidationFailed,
      );
      expect((await store.readStream("tally-c")).version).toBe(0);
    } finally {
      await store.close();
    }
  });

  test("writes one outbox row per routed event, with the message headers, in the append", async ({ db }) => {
    const store = await openTallyStore(db.url, { namespace: "ns1" });
    try {
      const { events } = await store.append("tally-d", [opened("d"), added("d", 4)], {
        expectedVersion: 0,
        metadata: { correlationId: "req-9", causationId: "cmd-9" },
        messages: [
          {
            subject: "ns1.cmd.other.poke",
            type: "Poke",
            schemaVersion: 1,
            data: { x: 1 },
            id: "11111111-1111-4111-8111-111111111111",
          },
        ],
      });
      const rows = await store.db
        .selectFrom("outbox" as never)
        .select(["message_id", "subject", "data", "headers"] as never[])
        .orderBy("id" as never)
        .execute();
      expect(rows).toEqual([
        {
          message_id: events[0]!.id,
          subject: "ns1.evt.tally.d.TallyOpened",
          data: { tallyId: "d", name: "d" },
          headers: {
            "Nats-Msg-Id": events[0]!.id,
            "Mikrom-Type": "TallyOpened",
            "Mikrom-Schema-Version": "1",
            "Mikrom-Correlation-Id": "req-9",
            "Mikrom-Causation-Id": "cmd-9",
            "Content-Type": "application/json",
          },
        },
        {
          message_id: events[1]!.id,
          subject: "ns1.evt.tally.d.TallyIncremented",
          data: { tallyId: "d", by: 4, note: null },
          headers: expect.objectContaining({ "Nats-Msg-Id": events[1]!.id, "Mikrom-Schema-Version": "2" }),
        },
        {
          message_id: "11111111-1111-4111-8111-111111111111",
          subject: "ns1.cmd.other.poke",
          data: { x: 1 },
          headers: expect.objectContaining({ "Mikrom-Type": "Poke", "Mikrom-Correlation-Id": "req-9" }),
        },
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("event metadata", () => {
  test("carries the trace context, correlation id and actor of the operation, and an explicit causation id", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url);
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    try {
      await runInCarrier({ traceparent }, () =>
        withContext({ request_id: "req-1", user_id: "7", user_name: "ada" }, () =>
          store.append("tally-m", [opened("m")], { expectedVersion: 0, metadata: { causationId: "msg-1" } }),
        ),
      );
      const [event] = (await store.readStream("tally-m")).events;
      expect(event!.metadata).toMatchObject({
        correlationId: "req-1",
        causationId: "msg-1",
        actor: { userId: "7", userName: "ada" },
        trace: { traceparent },
      });
      expect(event!.metadata.trace?.baggage).toContain("user.id=7");
      const { rows } = await sql<{ carrier: Record<string, string> }>`SELECT carrier FROM outbox`.execute(
        store.db,
      );
      expect(rows[0]!.carrier.traceparent).toBe(traceparent);
    } finally {
      await store.close();
    }
  });
});

describe("schema versions", () => {
  test("an event stored at an old version is upcast to the current one when read", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.append("tally-u", [opened("u")], { expectedVersion: 0 });
      // What code from before TallyIncremented v2 wrote.
      await sql`
        INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, tx_id)
        VALUES (gen_random_uuid(), 'tally-u', 2, 'TallyIncremented', 1, '{"tallyId":"u"}', pg_current_xact_id())`.execute(
        store.db,
      );
      const { events } = await store.readStream("tally-u");
      expect(events[1]).toMatchObject({
        type: "TallyIncremented",
        data: { tallyId: "u", by: 1, note: null },
      });
    } finally {
      await store.close();
    }
  });

  test("an event of a version newer than the code knows is reported, not guessed at", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await sql`
        INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, tx_id)
        VALUES (gen_random_uuid(), 'tally-f', 1, 'TallyOpened', 2, '{"tallyId":"f"}', pg_current_xact_id())`.execute(
        store.db,
      );
      await expect(store.readStream("tally-f")).rejects.toBeInstanceOf(UnreadableEvent);
    } finally {
      await store.close();
    }
  });
});

describe("migrations", () => {
  test("the store's and the service's migrations run together, each with its own history, and again as a no-op", async ({
    db,
  }) => {
    const first = await openTallyStore(db.url);
    await first.close();
    const store = await openTallyStore(db.url);
    try {
      const { rows } = await sql<{ name: string; table: string }>`
        SELECT name, 'store' AS table FROM mikrom_eventstore_migration
        UNION ALL SELECT name, 'service' FROM service_migration ORDER BY 2, 1`.execute(store.db);
      expect(rows).toEqual([
        { name: "0001_tallies", table: "service" },
        { name: "0001_event_store", table: "store" },
        { name: "0002_outbox_kept", table: "store" },
        { name: "0003_outbox_by_message", table: "store" },
      ]);
    } finally {
      await store.close();
    }
  });
});

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

async function lockWaiters(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    return rows[0]!.n;
  } finally {
    await client.end();
  }
}

describe("group commit", () => {
  test("appends from many concurrent writers to many streams all land, each stream without gaps", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 2 });
    try {
      const streams = Array.from({ length: 40 }, (_, i) => `g${i}`);
      await Promise.all(
        streams.map(async (id) => {
          await store.append(`tally-${id}`, [opened(id)], { expectedVersion: 0 });
          for (let v = 1; v <= 4; v++)
            await store.append(`tally-${id}`, [added(id, v)], { expectedVersion: v });
        }),
      );
      const { rows } = await sql<{ stream_id: string; versions: number[]; ordered: boolean }>`
        SELECT stream_id, array_agg(stream_version ORDER BY global_position) AS versions,
               array_agg(stream_version ORDER BY global_position) = array_agg(stream_version ORDER BY stream_version) AS ordered
        FROM events GROUP BY stream_id`.execute(store.db);
      expect(rows).toHaveLength(40);
      expect(rows.every((r) => r.ordered && r.versions.join() === "1,2,3,4,5")).toBe(true);
      expect(await store.outboxBacklog()).toBe(200);
    } finally {
      await store.close();
    }
  });

  test("when a racing writer fails a shared statement, each append in it still gets its own answer", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 1 });
    const blocker = await racingWriter(db.url, "tally-z");
    const racer = await racingWriter(db.url, "tally-x");
    try {
      // The only slot waits on the blocker; meanwhile x and y queue and will share the next statement.
      const z = store.append("tally-z", [opened("z")], { expectedVersion: 0 }).catch((e: unknown) => e);
      await waitFor("the first append to wait", async () => (await lockWaiters(db.url)) === 1);
      const x = store.append("tally-x", [opened("x")], { expectedVersion: 0 }).catch((e: unknown) => e);
      const y = store.append("tally-y", [opened("y")], { expectedVersion: 0 });
      await blocker.commit();
      expect(await z).toBeInstanceOf(ConcurrencyConflict);
      await waitFor(
        "the shared statement to wait on the racer",
        async () => (await lockWaiters(db.url)) === 1,
      );
      await racer.commit();
      expect(await x).toBeInstanceOf(ConcurrencyConflict);
      expect((await y).nextVersion).toBe(1);
      expect((await store.readStream("tally-y")).version).toBe(1);
    } finally {
      await store.close();
    }
  });
});
