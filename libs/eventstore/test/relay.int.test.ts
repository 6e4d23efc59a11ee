import { Header, names } from "@mikrom/contracts";
import { runInCarrier } from "@mikrom/telemetry";
import { describe, expect, test } from "@mikrom/testkit";
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { createRelay, type Publish, type Relay } from "../src/index.ts";
import type { TallyEvent } from "./fixtures/tally.ts";
import { jetStreamPublisher, openTallyStore, waitFor } from "./support.ts";

const opened = (tallyId: string): TallyEvent => ({ type: "TallyOpened", data: { tallyId, name: tallyId } });
const added = (tallyId: string, by: number): TallyEvent => ({
  type: "TallyIncremented",
  data: { tallyId, by, note: null },
});

async function eventsStream(jsm: JetStreamManager, namespace: string): Promise<string> {
  const n = names(namespace);
  await jsm.streams.add({ name: n.streams.events, subjects: [n.allEvents] });
  return n.streams.events;
}

async function stored(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { state } = await jsm.streams.info(stream);
  const messages: StoredMsg[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const msg = await jsm.streams.getMessage(stream, { seq });
    if (msg) messages.push(msg);
  }
  return messages;
}

async function messageCount(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}

async function stopAll(...relays: Relay[]): Promise<void> {
  await Promise.all(relays.map((r) => r.stop()));
}

describe("the outbox relay", () => {
  test("publishes each row with Nats-Msg-Id = event id, Mikrom and trace headers, then marks it sent", async ({
    db,
    nats,
  }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const relay = createRelay({ connectionString: db.url, publish: jetStreamPublisher(nats.js) });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    try {
      const { events } = await runInCarrier({ traceparent }, () =>
        store.append("tally-r", [opened("r"), added("r", 2)], {
          expectedVersion: 0,
          metadata: { correlationId: "req-1" },
        }),
      );
      relay.start();
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);
      const messages = await stored(nats.jsm, stream);
      expect(messages.map((m) => m.subject)).toEqual([
        `${nats.namespace}.evt.tally.r.TallyOpened`,
        `${nats.namespace}.evt.tally.r.TallyIncremented`,
      ]);
      expect(messages.map((m) => m.header.get(Header.MsgId))).toEqual(events.map((e) => e.id));
      expect(messages[1]!.json()).toEqual({ tallyId: "r", by: 2, note: null });
      expect(messages[1]!.header.get(Header.Type)).toBe("TallyIncremented");
      expect(messages[1]!.header.get(Header.SchemaVersion)).toBe("2");
      expect(messages[1]!.header.get(Header.CorrelationId)).toBe("req-1");
      expect(messages[1]!.header.get(Header.TraceParent)).toContain("0af7651916cd43dd8448eb211c80319c");
      expect(relay.stats()).toMatchObject({ leader: true, published: 2, failedPublishes: 0 });
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("asleep on an empty outbox, it is woken by NOTIFY from the append, not by its poll", async ({
    db,
    nats,
  }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const relay = createRelay({
      connectionString: db.url,
      publish: jetStreamPublisher(nats.js),
      pollIntervalMs: 600_000,
    });
    try {
      relay.start();
      await waitFor("the relay to go idle", () => relay.stats().idled > 0);
      for (let i = 1; i <= 3; i++) {
        await store.append(`tally-w${i}`, [opened(`w${i}`)], { expectedVersion: 0 });
        // Each wake-up must come from this append's NOTIFY: the poll would take ten minutes.
        await waitFor(
          `message ${i} in JetStream`,
          async () => (await messageCount(nats.jsm, stream)) === i,
          5000,
        );
        await waitFor("the relay to go idle again", () => relay.stats().idled > i - 1);
      }
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("nudged by its store's commits it publishes each row at once, lingering in between instead of going idle", async ({
    db,
    nats,
  }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    // Ten minutes of linger and of poll: only the nudge can make it look again.
    const relay = createRelay({
      connectionString: db.url,
      publish: jetStreamPublisher(nats.js),
      lingerMs: 600_000,
      pollIntervalMs: 600_000,
    });
    store.onCommit(() => relay.nudge());
    try {
      relay.start();
      for (let i = 1; i <= 5; i++) {
        await store.append(`tally-n${i}`, [opened(`n${i}`)], { expectedVersion: 0 });
        await waitFor(
          `message ${i} in JetStream`,
          async () => (await messageCount(nats.jsm, stream)) === i,
          5000,
        );
      }
      // Never idle: no flag updates, no NOTIFY from the appends.
      expect(relay.stats()).toMatchObject({ published: 5, idled: 0 });
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("going to sleep, it waits for an append that began before and so did not notify", async ({
    db,
    nats,
  }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const relay = createRelay({
      connectionString: db.url,
      publish: jetStreamPublisher(nats.js),
      pollIntervalMs: 600_000,
    });
    try {
      await store.append("tally-s0", [opened("s0")], { expectedVersion: 0 });
      let commit!: () => void;
      const committed = new Promise<void>((resolve) => {
        commit = resolve;
      });
      const appended = new Promise<void>((resolve) => {
        // This append reads the idle flag while the relay is not running (no NOTIFY), and commits late.
        void store.transaction(async (tx) => {
          await tx.append("tally-s1", [opened("s1")], { expectedVersion: 0 });
          resolve();
          await committed;
        });
      });
      await appended;
      relay.start();
      await waitFor("the relay to publish the first row and go idle", () => relay.stats().idled > 0);
      commit();
      await waitFor(
        "the late row in JetStream",
        async () => (await messageCount(nats.jsm, stream)) === 2,
        4000,
      );
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("publishes a burst bigger than its batch in stream order", async ({ db, nats }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const relay = createRelay({
      connectionString: db.url,
      publish: jetStreamPublisher(nats.js),
      batchSize: 50,
    });
    try {
      await store.append("tally-b", [opened("b")], { expectedVersion: 0 });
      const batch = Array.from({ length: 299 }, (_, i) => added("b", i + 1));
      await store.append("tally-b", batch, { expectedVersion: 1 });
      relay.start();
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);
      const messages = await stored(nats.jsm, stream);
      expect(messages).toHaveLength(300);
      expect(messages.slice(1).map((m) => (m.json() as { by: number }).by)).toEqual(
        batch.map((_, i) => i + 1),
      );
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("keeps rows whose publish failed and sends them once publishing works again", async ({ db, nats }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    let failing = true;
    const real = jetStreamPublisher(nats.js);
    const publish: Publish = async (msg) => {
      if (failing) throw new Error("JetStream is unavailable");
      await real(msg);
    };
    const relay = createRelay({ connectionString: db.url, publish, retry: { initialMs: 20, maxMs: 50 } });
    try {
      for (const id of ["f1", "f2", "f3"])
        await store.append(`tally-${id}`, [opened(id)], { expectedVersion: 0 });
      relay.start();
      await waitFor("publishes to fail", () => relay.stats().failedPublishes >= 6);
      expect(await store.outboxBacklog()).toBe(3);
      failing = false;
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);
      expect(await messageCount(nats.jsm, stream)).toBe(3);
    } finally {
      await relay.stop();
      await store.close();
    }
  });

  test("with several relays only the lease holder publishes, and another takes over when it stops", async ({
    db,
    nats,
  }) => {
    const stream = await eventsStream(nats.jsm, nats.namespace);
    const store = await openTallyStore(db.url, { namespace: nats.namespace });
    const options = { connectionString: db.url, publish: jetStreamPublisher(nats.js), leaseRetryMs: 50 };
    const relays = [createRelay(options), createRelay(options), createRelay(options)];
    try {
      for (const r of relays) r.start();
      const first = await waitFor("a leader", () => relays.find((r) => r.stats().leader));
      for (let i = 0; i < 20; i++)
        await store.append(`tally-l${i}`, [opened(`l${i}`)], { expectedVersion: 0 });
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);
      expect(relays.filter((r) => r.stats().leader)).toEqual([first]);
      expect(relays.map((r) => r.stats().published).sort()).toEqual([0, 0, 20]);

      await first.stop();
      const rest = relays.filter((r) => r !== first);
      const second = await waitFor("a new leader", () => rest.find((r) => r.stats().leader));
      for (let i = 20; i < 30; i++)
        await store.append(`tally-l${i}`, [opened(`l${i}`)], { expectedVersion: 0 });
      await waitFor("the outbox to drain", async () => (await store.outboxBacklog()) === 0);
      expect(second.stats().published).toBe(10);
      expect(await messageCount(nats.jsm, stream)).toBe(30);
    } finally {
      await stopAll(...relays);
      await store.close();
    }
  });
});
