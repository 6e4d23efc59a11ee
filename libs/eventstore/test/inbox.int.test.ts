import { Header, names } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { AckPolicy, type JsMsg } from "@nats-io/jetstream";
import { headers, nanos } from "@nats-io/transport-node";
import { sql } from "kysely";
import { createRelay } from "../src/index.ts";
import { tallyStream } from "./fixtures/tally.ts";
import { jetStreamPublisher, openTallyStore, waitFor } from "./support.ts";

describe("the inbox", () => {
  test("a message redelivered after a missed ack, and one published twice, change state once", async ({
    db,
    nats,
  }) => {
    const n = names(nats.namespace);
    // A short duplicate window, so that the explicit re-publish below gets past JetStream's de-duplication.
    await nats.jsm.streams.add({
      name: n.streams.events,
      subjects: [n.allEvents],
      duplicate_window: nanos(100),
    });
    await nats.jsm.consumers.add(n.streams.events, {
      durable_name: "totals",
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(1000),
      max_deliver: 5,
    });
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const relay = createRelay({ connectionString: db.url, publish: jetStreamPublisher(nats.js) });
    await sql`CREATE TABLE totals (tally_id text PRIMARY KEY, total integer NOT NULL)`.execute(store.db);
    try {
      await store.handle(tallyStream("i"), () => [
        { type: "TallyOpened", data: { tallyId: "i", name: "i" } },
      ]);
      for (const by of [1, 10, 100]) {
        await store.handle(tallyStream("i"), () => [
          { type: "TallyIncremented", data: { tallyId: "i", by, note: null } },
        ]);
      }
      relay.start();
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);

      const consumer = await nats.js.consumers.get(n.streams.events, "totals");
      const outcomes: string[] = [];
      let republished = false;
      let missedAck = false;
      /** The handler: its effect (add to the total) and the inbox record commit together. */
      const handle = async (msg: JsMsg): Promise<void> => {
        const id = msg.headers!.get(Header.MsgId);
        const data = msg.json<{ tallyId: string; by?: number }>();
        const once = await store.handleOnce("totals", id, async (tx) => {
          await sql`
            INSERT INTO totals VALUES (${data.tallyId}, ${data.by ?? 0})
            ON CONFLICT (tally_id) DO UPDATE SET total = totals.total + excluded.total`.execute(tx.db);
        });
        outcomes.push(
          `${data.by ?? 0}:${once.duplicate ? "duplicate" : "applied"}#${msg.info.deliveryCount}`,
        );
        if (data.by === 10 && !missedAck) {
          missedAck = true; // committed, but the ack is lost: JetStream delivers it again after ack_wait
          return;
        }
        msg.ack();
        if (data.by === 100 && !republished) {
          republished = true;
          const h = headers();
          for (const [key, value] of msg.headers!) h.set(key, value[0]!);
          const ack = await nats.js.publish(msg.subject, msg.data, { msgID: id, headers: h });
          expect(ack.duplicate).toBe(false);
        }
      };
      await waitFor(
        "the redelivery and the duplicate to be handled",
        async () => {
          const msg = await consumer.next({ expires: 1000 });
          if (msg) await handle(msg);
          return outcomes.length >= 6;
        },
        15_000,
      );

      expect([...outcomes].sort()).toEqual(
        [
          "0:applied#1",
          "1:applied#1",
          "10:applied#1",
          "100:applied#1",
          "100:duplicate#1",
          "10:duplicate#2",
        ].sort(),
      );
      const { rows } = await sql<{ total: number }>`SELECT total FROM totals`.execute(store.db);
      expect(rows).toEqual([{ total: 111 }]);
      expect(await consumer.next({ expires: 1500 })).toBeNull();
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("two handlers racing on the same message: one applies it, the other finds it a duplicate", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url, { poolSize: 4 });
    try {
      let applied = 0;
      const results = await Promise.all(
        Array.from({ length: 6 }, () =>
          store.handleOnce("racers", "msg-1", async (tx) => {
            await sql`SELECT pg_sleep(0.05)`.execute(tx.db); // hold the inbox row while the others arrive
            applied++;
            return "done";
          }),
        ),
      );
      expect(applied).toBe(1);
      expect(results.filter((r) => !r.duplicate)).toEqual([{ duplicate: false, result: "done" }]);
      expect(results.filter((r) => r.duplicate)).toHaveLength(5);
    } finally {
      await store.close();
    }
  });

  test("a message delivered again has what it caused queued again, marked sent again past JetStream's duplicate window", async ({
    db,
  }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.handleOnce("answers", "ask-1", (tx) =>
        tx.append("tally-r", [{ type: "TallyOpened", data: { tallyId: "r", name: "r" } }], {
          expectedVersion: 0,
        }),
      );
      const outbox = () =>
        sql<{ sent: boolean; resend: string | null }>`
          SELECT sent_at IS NOT NULL AS sent, headers->>${Header.Resend} AS resend FROM outbox
          WHERE headers->>${Header.CausationId} = 'ask-1'`
          .execute(store.db)
          .then((r) => r.rows);
      expect(await outbox()).toEqual([{ sent: false, resend: null }]);
      const markSent = () => sql`UPDATE outbox SET sent_at = now()`.execute(store.db);
      await markSent();
      expect(await store.handleOnce("answers", "ask-1", async () => "twice")).toEqual({ duplicate: true });
      expect(await outbox()).toEqual([{ sent: false, resend: "1" }]);
      await markSent();
      await store.handleOnce("answers", "ask-1", async () => "thrice");
      expect(await outbox()).toEqual([{ sent: false, resend: "2" }]);
    } finally {
      await store.close();
    }
  });

  test("a handler that fails leaves no inbox record, so the redelivery is applied", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await expect(
        store.handleOnce("flaky", "msg-2", async () => {
          throw new Error("downstream unavailable");
        }),
      ).rejects.toThrow("downstream unavailable");
      const again = await store.handleOnce("flaky", "msg-2", async (tx) => {
        const appended = await tx.append(
          "tally-k",
          [{ type: "TallyOpened", data: { tallyId: "k", name: "k" } }],
          {
            expectedVersion: 0,
          },
        );
        return appended.events[0]!.metadata.causationId;
      });
      expect(again).toEqual({ duplicate: false, result: "msg-2" });
    } finally {
      await store.close();
    }
  });

  test("pruning forgets old records, after which the same message id counts as new", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      await store.handleOnce("pruned", "msg-3", async () => {});
      expect(await store.handleOnce("pruned", "msg-3", async () => {})).toEqual({ duplicate: true });
      expect(await store.pruneInbox(60_000)).toBe(0);
      expect(await store.pruneInbox(0)).toBe(1);
      expect(await store.handleOnce("pruned", "msg-3", async () => "again")).toEqual({
        duplicate: false,
        result: "again",
      });
    } finally {
      await store.close();
    }
  });

  test("the store prunes its inbox by itself, past the retention it was given", async ({ db }) => {
    const store = await openTallyStore(db.url, { inboxRetentionMs: 300 });
    try {
      await store.handleOnce("kept-a-while", "msg-4", async () => {});
      expect(await store.inboxHas("kept-a-while", "msg-4")).toBe(true);
      await waitFor("the record pruned", async () => !(await store.inboxHas("kept-a-while", "msg-4")), 5_000);
    } finally {
      await store.close();
    }
  });
});
