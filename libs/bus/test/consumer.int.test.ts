import { Header, type MessageDef, type Names, names } from "@mikrom/contracts";
import { currentTraceId, startTelemetry, type Telemetry } from "@mikrom/telemetry";
import { describe, expect, type TestNats, test } from "@mikrom/testkit";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, onTestFinished } from "vitest";
import {
  type ConsumerOptions,
  type ConsumerRunner,
  type ConsumerSpec,
  createPublisher,
  DeadLetterHeader,
  declareTopology,
  type Envelope,
  PermanentFailure,
  type Publisher,
  startConsumer,
} from "../src/index.ts";
import { captureLogs, DoWork, deadLetters, registry, type WorkDone, waitFor } from "./support.ts";

type Handled = Envelope<typeof DoWork | typeof WorkDone>;

let telemetry: Telemetry;
beforeAll(async () => {
  captureLogs();
  // Spans with real trace ids, exported nowhere: enough to see the trace carried across the bus.
  process.env.OTEL_TRACES_EXPORTER = "none";
  process.env.OTEL_METRICS_EXPORTER = "none";
  telemetry = await startTelemetry({ serviceName: "bus-test" });
});
afterAll(() => telemetry.shutdown());

interface Rig {
  n: Names;
  subject: string;
  publisher: Publisher;
  start(
    options: Pick<ConsumerOptions<MessageDef>, "handle"> & Partial<ConsumerOptions<MessageDef>>,
  ): Promise<ConsumerRunner>;
}

/** Streams, one `worker` consumer on `<ns>.cmd.work.>`, a publisher, and runners stopped after the test. */
async function rig(nats: TestNats, consumer: Partial<ConsumerSpec> = {}): Promise<Rig> {
  const n = names(nats.namespace);
  await declareTopology(nats.jsm, n, {
    consumers: [
      {
        stream: n.streams.commands,
        durable: "worker",
        filterSubject: `${nats.namespace}.cmd.work.>`,
        ...consumer,
      },
    ],
  });
  return {
    n,
    subject: n.command("work", "do"),
    publisher: createPublisher(nats.nc),
    async start(options) {
      const runner = await startConsumer(nats.nc, {
        names: n,
        stream: n.streams.commands,
        durable: "worker",
        registry,
        retryDelaysMs: [50],
        ...options,
      } as ConsumerOptions<MessageDef>);
      onTestFinished(() => runner.stop({ timeoutMs: 2_000 }));
      return runner;
    },
  };
}

async function remaining(nats: TestNats, stream: string): Promise<number> {
  return (await nats.jsm.streams.info(stream)).state.messages;
}

describe("a consumer", () => {
  test("holds a message while its handler's database is away, spending no delivery, and handles it once it is back", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats, { maxDeliver: 2, ackWaitMs: 1_000 });
    const deliveries: number[] = [];
    let away = 6;
    await start({
      handle: async (m) => {
        deliveries.push(m.deliveryCount);
        if (away-- > 0)
          throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
      },
    });
    await publisher.send(DoWork, subject, { n: 1 });
    await waitFor(
      "the message handled",
      async () => (await remaining(nats, n.streams.commands)) === 0,
      20_000,
    );
    // Seven runs of the handler across more than two ack waits, all in its first delivery.
    expect(deliveries).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(await deadLetters(nats.jsm, n)).toEqual([]);
  });

  test("gets a message sent again on purpose (Mikrom-Resend) inside JetStream's duplicate window, under the same message id", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats);
    const seen: string[] = [];
    await start({ handle: async (m) => void seen.push(m.messageId) });
    const id = "0b1c2d3e-0000-4000-8000-000000000001";
    await publisher.send(DoWork, subject, { n: 1 }, { messageId: id });
    // The same message again: dropped by the duplicate window...
    const dropped = await publisher.send(DoWork, subject, { n: 1 }, { messageId: id });
    expect(dropped.duplicate).toBe(true);
    // ...unless it is marked sent again, and each resend gets through once.
    const again = await publisher.send(
      DoWork,
      subject,
      { n: 1 },
      { messageId: id, headers: { [Header.Resend]: "1" } },
    );
    expect(again.duplicate).toBe(false);
    const twice = await publisher.send(
      DoWork,
      subject,
      { n: 1 },
      { messageId: id, headers: { [Header.Resend]: "1" } },
    );
    expect(twice.duplicate).toBe(true);
    await waitFor("both copies handled", () => seen.length === 2);
    expect(seen).toEqual([id, id]);
    expect(await remaining(nats, n.streams.commands)).toBe(0);
  });

  test("hands a valid message to its handler as a typed envelope in the publisher's trace, then acks it", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats);
    const seen: Array<{ message: Handled; traceId: string | undefined }> = [];
    await start({
      handle: async (message) => void seen.push({ message: message as Handled, traceId: currentTraceId() }),
    });

    const sent = await publisher.send(
      DoWork,
      subject,
      { n: 1, note: "first" },
      { correlationId: "req-1", causationId: "evt-0", headers: { "X-Extra": "kept" } },
    );
    const [first] = await waitFor("the handler to run", () => seen.length === 1 && seen);
    const { message, traceId } = first!;

    expect(message).toMatchObject({
      type: "DoWork",
      data: { n: 1, note: "first" },
      subject,
      messageId: sent.messageId,
      correlationId: "req-1",
      causationId: "evt-0",
      deliveryCount: 1,
      streamSequence: sent.seq,
    });
    expect(message.headers.get(Header.ContentType)).toBe("application/json");
    expect(message.headers.get(Header.SchemaVersion)).toBe("1");
    expect(message.headers.get("X-Extra")).toBe("kept");
    const traceparent = message.headers.get(Header.TraceParent);
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    expect(traceId).toBe(traceparent.split("-")[1]);
    // Commands live in a work-queue stream: an acked message is gone.
    await waitFor("the ack", async () => (await remaining(nats, n.streams.commands)) === 0);
  });

  test("dead-letters an invalid message at once with the reason and its headers, and serves the messages behind it", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats);
    const handled: number[] = [];
    await start({ handle: async (m) => void handled.push((m as Handled).data.n) });

    const typed = (type: string) => {
      const h = headers();
      h.set(Header.Type, type);
      h.set(Header.SchemaVersion, "1");
      h.set("X-Origin", "test");
      return h;
    };
    await publisher.publish(subject, JSON.stringify({ n: -1 }), {
      msgId: "bad-data",
      headers: typed("DoWork"),
    });
    await publisher.publish(subject, "{not json", { msgId: "bad-json", headers: typed("DoWork") });
    await publisher.publish(subject, JSON.stringify({ n: 1 }), { msgId: "no-type" });
    await publisher.publish(subject, JSON.stringify({ n: 1 }), {
      msgId: "unknown",
      headers: typed("Explode"),
    });
    await publisher.send(DoWork, subject, { n: 7 });
    await publisher.send(DoWork, subject, { n: 8 });

    await waitFor("the valid messages", () => handled.length === 2);
    expect(handled).toEqual([7, 8]);
    const letters = await waitFor("four dead letters", async () => {
      const all = await deadLetters(nats.jsm, n);
      return all.length === 4 && all;
    });
    const byId = new Map(letters.map((l) => [l.header.get(DeadLetterHeader.MessageId), l]));
    const badData = byId.get("bad-data")!;
    expect(badData.subject).toBe(n.deadLetter(subject));
    expect(badData.string()).toBe(JSON.stringify({ n: -1 }));
    expect(badData.header.get(DeadLetterHeader.Reason)).toMatch(
      /^invalid message: ValidationFailed: DoWork is invalid: n: /,
    );
    expect(badData.header.get(DeadLetterHeader.Subject)).toBe(subject);
    expect(badData.header.get(DeadLetterHeader.Stream)).toBe(n.streams.commands);
    expect(badData.header.get(DeadLetterHeader.Sequence)).toBe("1");
    expect(badData.header.get(DeadLetterHeader.Deliveries)).toBe("1");
    expect(badData.header.get(DeadLetterHeader.Consumer)).toBe("worker");
    expect(badData.header.get("X-Origin")).toBe("test");
    expect(badData.header.get(Header.Type)).toBe("DoWork");
    expect(byId.get("bad-json")!.header.get(DeadLetterHeader.Reason)).toMatch(/body is not valid JSON/);
    expect(byId.get("no-type")!.header.get(DeadLetterHeader.Reason)).toMatch(/missing Mikrom-Type header/);
    expect(byId.get("unknown")!.header.get(DeadLetterHeader.Reason)).toMatch(/unknown message type Explode/);
    // Terminated, not left for redelivery: the work queue is empty.
    await waitFor("every message settled", async () => (await remaining(nats, n.streams.commands)) === 0);
  });

  test("dead-letters a message whose handler fails on every delivery, with the last error, and moves on", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats, { maxDeliver: 3 });
    const attempts: number[] = [];
    const handled: number[] = [];
    await start({
      handle: async (m) => {
        const { data, deliveryCount } = m as Handled;
        if (data.n === 0) {
          attempts.push(deliveryCount);
          throw new Error(`disk full (attempt ${deliveryCount})`);
        }
        handled.push(data.n);
      },
    });
    const poison = await publisher.send(DoWork, subject, { n: 0 });
    await publisher.send(DoWork, subject, { n: 1 });
    await publisher.send(DoWork, subject, { n: 2 });

    const [letter] = await waitFor("the dead letter", async () => {
      const all = await deadLetters(nats.jsm, n);
      return all.length === 1 && all;
    });
    expect(attempts).toEqual([1, 2, 3]);
    expect(handled.sort()).toEqual([1, 2]);
    expect(letter!.header.get(DeadLetterHeader.Reason)).toBe(
      "failed on all 3 deliveries; last error: disk full (attempt 3)",
    );
    expect(letter!.header.get(DeadLetterHeader.Deliveries)).toBe("3");
    expect(letter!.header.get(DeadLetterHeader.MessageId)).toBe(poison.messageId);
    await waitFor("the queue to empty", async () => (await remaining(nats, n.streams.commands)) === 0);
  });

  test("dead-letters at once when the handler throws PermanentFailure", async ({ nats }) => {
    const { n, subject, publisher, start } = await rig(nats, { maxDeliver: 5 });
    let calls = 0;
    await start({
      handle: async () => {
        calls++;
        throw new PermanentFailure("VM srv-00000000 does not exist");
      },
    });
    await publisher.send(DoWork, subject, { n: 3 });
    const [letter] = await waitFor("the dead letter", async () => {
      const all = await deadLetters(nats.jsm, n);
      return all.length === 1 && all;
    });
    expect(letter!.header.get(DeadLetterHeader.Reason)).toBe(
      "PermanentFailure: VM srv-00000000 does not exist",
    );
    expect(calls).toBe(1);
  });

  test("keeps a message while a long handler runs past the ack wait, by sending working acks", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats, { ackWaitMs: 400, maxDeliver: 3 });
    const deliveries: number[] = [];
    let finished = false;
    await start({
      // A second worker stands ready to take a redelivery, as another replica would.
      concurrency: 2,
      handle: async (m) => {
        deliveries.push(m.deliveryCount);
        await new Promise((resolve) => setTimeout(resolve, 1_300)); // a boot, say: three ack waits long
        finished = true;
      },
    });
    await publisher.send(DoWork, subject, { n: 4 });
    await waitFor("the long step to finish", () => finished);
    await waitFor("the ack", async () => (await remaining(nats, n.streams.commands)) === 0);
    expect(deliveries).toEqual([1]);
    expect((await nats.jsm.consumers.info(n.streams.commands, "worker")).num_redelivered).toBe(0);
  });

  test("a message redelivered after a missed ack arrives with the same id; an explicit duplicate publish is dropped", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats, { ackWaitMs: 300, maxDeliver: 3 });
    const first = await publisher.send(DoWork, subject, { n: 5 }, { messageId: "cmd-5" });
    const again = await publisher.send(DoWork, subject, { n: 5 }, { messageId: "cmd-5" });
    expect(first.duplicate).toBe(false);
    expect(again.duplicate).toBe(true);
    expect(await remaining(nats, n.streams.commands)).toBe(1);

    // A replica takes the message and dies before acking it.
    const crashed = await nats.js.consumers.get(n.streams.commands, "worker");
    const taken = await crashed.next({ expires: 2_000 });
    expect(taken?.info.deliveryCount).toBe(1);

    const seen: Handled[] = [];
    await start({ handle: async (m) => void seen.push(m as Handled) });
    await waitFor("the redelivery", () => seen.length === 1);
    expect(seen[0]).toMatchObject({ messageId: "cmd-5", deliveryCount: 2, data: { n: 5 } });
    await waitFor("the ack", async () => (await remaining(nats, n.streams.commands)) === 0);
    expect(seen).toHaveLength(1);
  });

  test("dead-letters a message whose every delivery timed out without an answer (the max-deliveries watch)", async ({
    nats,
  }) => {
    const { n, subject, publisher, start } = await rig(nats, { ackWaitMs: 200, maxDeliver: 2 });
    const sent = await publisher.send(DoWork, subject, { n: 6 });
    // Both deliveries go to replicas that die holding the message.
    const crashed = await nats.js.consumers.get(n.streams.commands, "worker");
    expect((await crashed.next({ expires: 2_000 }))?.info.deliveryCount).toBe(1);
    expect((await crashed.next({ expires: 2_000 }))?.info.deliveryCount).toBe(2);

    const seen: Handled[] = [];
    await start({ handle: async (m) => void seen.push(m as Handled) });
    const [letter] = await waitFor("the dead letter", async () => {
      const all = await deadLetters(nats.jsm, n);
      return all.length === 1 && all;
    });
    expect(letter!.header.get(DeadLetterHeader.Reason)).toMatch(/^no ack after 2 deliveries/);
    expect(letter!.header.get(DeadLetterHeader.MessageId)).toBe(sent.messageId);
    expect(letter!.json()).toEqual({ n: 6 });
    expect(seen).toEqual([]);
  });

  test("never handles more messages at once than its concurrency", async ({ nats }) => {
    const { subject, publisher, start } = await rig(nats);
    let running = 0;
    let peak = 0;
    const handled = new Set<number>();
    await start({
      concurrency: 3,
      handle: async (m) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 30));
        handled.add((m as Handled).data.n);
        running--;
      },
    });
    await Promise.all(Array.from({ length: 12 }, (_, i) => publisher.send(DoWork, subject, { n: i })));
    await waitFor("every message", () => handled.size === 12);
    expect(peak).toBe(3);
  });

  test("pulls its free slots in one request, and holds nothing beyond them", async ({ nats }) => {
    const { n, subject, publisher, start } = await rig(nats);
    await Promise.all(Array.from({ length: 12 }, (_, i) => publisher.send(DoWork, subject, { n: i })));
    // Every pull request crosses the server on this subject: count them and what each asks for.
    const pulls: number[] = [];
    const watch = nats.nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${n.streams.commands}.worker`, {
      callback: (_error, m) => {
        pulls.push((m.json() as { batch: number }).batch);
      },
    });
    onTestFinished(() => watch.unsubscribe());
    await nats.nc.flush();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let running = 0;
    const handled = new Set<number>();
    await start({
      concurrency: 4,
      handle: async (m) => {
        running++;
        await gate;
        handled.add((m as Handled).data.n);
      },
    });
    await waitFor("four handlers running", () => running === 4);
    expect(pulls).toEqual([4]);
    const info = await nats.jsm.consumers.info(n.streams.commands, "worker");
    expect(info.num_ack_pending).toBe(4);
    expect(info.num_pending).toBe(8);
    open();
    await waitFor("every message", () => handled.size === 12);
    expect(pulls.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(12);
  });
});
