import { names } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { beforeAll } from "vitest";
import { connectNats, createPublisher, declareTopology, shutdown, startConsumer } from "../src/index.ts";
import { startOwnNatsServer } from "./nats-server.ts";
import { captureLogs, DoWork, gate, registry, waitFor } from "./support.ts";

let logs: Array<Record<string, unknown>>;
beforeAll(() => {
  logs = captureLogs();
});

describe("graceful shutdown", () => {
  test("lets a slow handler finish and ack, fetches nothing once it has begun, and drains the connection", async ({
    nats,
  }) => {
    const n = names(nats.namespace);
    await declareTopology(nats.jsm, n, {
      consumers: [
        { stream: n.streams.commands, durable: "slow", filterSubject: `${nats.namespace}.cmd.work.>` },
      ],
    });
    const subject = n.command("work", "do");
    // The service's own connection; the test's (nats.nc) watches from outside.
    const nc = await connectNats({ servers: nats.url, name: "shutdown-test" });
    const started = gate();
    const release = gate();
    const handled: number[] = [];
    const runner = await startConsumer(nc, {
      names: n,
      stream: n.streams.commands,
      durable: "slow",
      registry,
      // Two workers: one busy with the slow message, one waiting on a pull when stop() begins.
      concurrency: 2,
      handle: async (m) => {
        started.open();
        await release.opened;
        handled.push((m.data as { n: number }).n);
      },
    });
    const publisher = createPublisher(nats.nc);
    await publisher.send(DoWork, subject, { n: 1 });
    await started.opened;

    let stopped = false;
    const stopping = shutdown(nc, { consumers: [runner] }).then(() => {
      stopped = true;
    });
    // The idle worker's pull is withdrawn at once, while the slow handler still runs.
    await waitFor("the pending pull to be withdrawn", async () => {
      return (await nats.jsm.consumers.info(n.streams.commands, "slow")).num_waiting === 0;
    });
    await publisher.send(DoWork, subject, { n: 2 });
    expect(stopped).toBe(false); // waiting for the handler
    release.open();
    await stopping;

    expect(handled).toEqual([1]);
    expect(nc.isClosed()).toBe(true);
    // The ack left on the drained connection; the server may take a moment to apply it.
    const info = await waitFor("the slow message's ack", async () => {
      const ci = await nats.jsm.consumers.info(n.streams.commands, "slow");
      return ci.num_ack_pending === 0 && ci;
    });
    expect(info.delivered.stream_seq).toBe(1); // the second message was never delivered
    expect(info.num_pending).toBe(1);
    const stream = await nats.jsm.streams.info(n.streams.commands);
    expect(stream.state.messages).toBe(1);
    expect(logs.some((l) => l.message === "NATS connection drained")).toBe(true);
  });

  test("gives up waiting at the deadline and leaves the unfinished message for redelivery", async ({
    nats,
  }) => {
    const n = names(nats.namespace);
    await declareTopology(nats.jsm, n, {
      consumers: [
        { stream: n.streams.commands, durable: "stuck", filterSubject: `${nats.namespace}.cmd.work.>` },
      ],
    });
    const nc = await connectNats({ servers: nats.url, name: "shutdown-test-stuck" });
    const started = gate();
    const never = gate();
    const runner = await startConsumer(nc, {
      names: n,
      stream: n.streams.commands,
      durable: "stuck",
      registry,
      handle: async () => {
        started.open();
        await never.opened;
      },
    });
    await createPublisher(nats.nc).send(DoWork, n.command("work", "do"), { n: 1 });
    await started.opened;
    await shutdown(nc, { consumers: [runner], timeoutMs: 200 });
    expect(nc.isClosed()).toBe(true);
    const info = await nats.jsm.consumers.info(n.streams.commands, "stuck");
    expect(info.num_ack_pending).toBe(1);
    expect(
      logs.some(
        (l) =>
          l.message === "handlers still running at the stop deadline; their messages will be redelivered",
      ),
    ).toBe(true);
    never.open(); // let the abandoned handler end; its ack goes nowhere
    await waitFor("the abandoned handler to end", () => runner.inFlight() === 0);
  });

  test("with the server gone, stops after the drain deadline and closes the connection", async () => {
    const server = await startOwnNatsServer();
    try {
      const nc = await connectNats({ servers: server.url, name: "shutdown-no-server" });
      await server.kill();
      const started = Date.now();
      await shutdown(nc, { drainTimeoutMs: 500 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(nc.isClosed()).toBe(true);
      expect(logs.some((l) => String(l.message).startsWith("NATS connection not drained in time"))).toBe(
        true,
      );
    } finally {
      await server.dispose();
    }
  });
});
