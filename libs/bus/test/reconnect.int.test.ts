import { names } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll } from "vitest";
import { connectNats, createPublisher, declareTopology, shutdown, startConsumer } from "../src/index.ts";
import { type OwnNatsServer, startOwnNatsServer } from "./nats-server.ts";
import { captureLogs, DoWork, deadLetters, registry, waitFor } from "./support.ts";

let logs: Array<Record<string, unknown>>;
let server: OwnNatsServer;
beforeAll(async () => {
  logs = captureLogs();
  server = await startOwnNatsServer();
});
afterAll(() => server?.dispose());

describe("a NATS restart during a run", () => {
  test("publishers and consumers reconnect by themselves and no message is lost", async () => {
    const n = names("restart");
    const subject = n.command("work", "do");
    // Publisher and consumer on connections of their own, as two services would be.
    const consumerNc = await connectNats({ servers: server.url, name: "consumer", reconnectTimeWaitMs: 100 });
    const publisherNc = await connectNats({
      servers: server.url,
      name: "publisher",
      reconnectTimeWaitMs: 100,
    });
    const jsm = await jetstreamManager(consumerNc);
    await declareTopology(jsm, n, {
      // A short ack wait: acks sent just before the kill may be lost, and those messages come back.
      consumers: [
        {
          stream: n.streams.commands,
          durable: "worker",
          filterSubject: "restart.cmd.work.>",
          ackWaitMs: 1_000,
        },
      ],
    });
    const handled = new Set<number>();
    let deliveries = 0;
    const runner = await startConsumer(consumerNc, {
      names: n,
      stream: n.streams.commands,
      durable: "worker",
      registry,
      concurrency: 4,
      handle: async (m) => {
        deliveries++;
        handled.add((m.data as { n: number }).n);
      },
    });

    const total = 400;
    const publisher = createPublisher(publisherNc);
    let restart: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      if (i === 150) restart = server.kill().then(() => server.start());
      // A publish whose ack died with the server is retried after a short timeout, with the same id.
      await publisher.send(DoWork, subject, { n: i }, { messageId: `work-${i}`, timeoutMs: 1_000 });
    }
    await restart;

    await waitFor("every message handled", () => handled.size === total, 20_000);
    // Acked as the consumer sees it. (The stream's own count also drops on each ack of a work queue,
    // but whether a removal made just before the kill survives it is the server's business.)
    let last: unknown;
    await waitFor(
      "every message acked",
      async () => {
        const info = await jsm.consumers.info(n.streams.commands, "worker");
        const stream = (await jsm.streams.info(n.streams.commands)).state;
        last = {
          ack_pending: info.num_ack_pending,
          pending: info.num_pending,
          ack_floor: info.ack_floor,
          stream,
        };
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      10_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(last)}`);
    });
    expect([...handled].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(await deadLetters(jsm, n)).toEqual([]);
    expect(deliveries).toBeGreaterThanOrEqual(total); // redeliveries after lost acks are allowed, losses are not

    const messages = logs.filter((l) => l.logger === "mikrom.bus.connection").map((l) => l.message);
    expect(messages).toContain("disconnected from NATS, reconnecting");
    expect(messages).toContain("reconnected to NATS");

    await shutdown(consumerNc, { consumers: [runner] });
    await shutdown(publisherNc, {});
  });
});
