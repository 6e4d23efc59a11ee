import { Header, type MessageDef, names } from "@mikrom/contracts";
import {
  describe,
  expect,
  type ReceivedMetricPoint,
  startTestTelemetry,
  type TestNats,
  type TestTelemetry,
  test,
} from "@mikrom/testkit";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, onTestFinished } from "vitest";
import {
  type ConsumerOptions,
  createPublisher,
  declareTopology,
  type Envelope,
  PermanentFailure,
  startConsumer,
} from "../src/index.ts";
import { captureLogs, DoWork, gate, registry, waitFor } from "./support.ts";

/**
 * The consumer's metrics leave the process through the real OTLP/HTTP exporter (JSON) and reach a
 * real receiver, every 200 ms.
 */
let otel: TestTelemetry;
beforeAll(async () => {
  captureLogs();
  otel = await startTestTelemetry({ serviceName: "bus-metrics-test" });
});
afterAll(() => otel.stop());

async function worker(
  nats: TestNats,
  handle: (message: Envelope<typeof DoWork>) => Promise<void>,
): Promise<{
  stream: string;
  durable: string;
  send(n: number): Promise<void>;
  sendUnknown(): Promise<void>;
}> {
  const n = names(nats.namespace);
  // A durable of its own per test: the series are told apart by consumer group.
  const durable = `worker-${nats.namespace.slice(-8)}`;
  await declareTopology(nats.jsm, n, {
    consumers: [{ stream: n.streams.commands, durable, filterSubject: `${nats.namespace}.cmd.work.>` }],
  });
  const runner = await startConsumer(nats.nc, {
    names: n,
    stream: n.streams.commands,
    durable,
    registry,
    retryDelaysMs: [50],
    handle,
  } as ConsumerOptions<MessageDef>);
  onTestFinished(() => runner.stop({ timeoutMs: 2_000 }));
  const publisher = createPublisher(nats.nc);
  return {
    stream: n.streams.commands,
    durable,
    // The subject carries an entity id, as real subjects do: it must not reach any attribute.
    send: async (i) => void (await publisher.send(DoWork, n.command("work", `do-${i}`), { n: i })),
    async sendUnknown() {
      const h = headers();
      h.set(Header.Type, "SomethingElse");
      await nats.js.publish(n.command("work", "odd"), "{}", { headers: h });
    },
  };
}

function handled(durable: string, type: string, outcome: string) {
  return (p: ReceivedMetricPoint): boolean =>
    p.name === "messaging.process.duration" &&
    p.attributes["messaging.consumer.group.name"] === durable &&
    p.attributes["messaging.message.type"] === type &&
    p.attributes["mikrom.outcome"] === outcome;
}

describe("consumer metrics", () => {
  test("record each delivery's handling duration by message type and outcome: ack, retry, dead_letter", async ({
    nats,
  }) => {
    const w = await worker(nats, async (m) => {
      if (m.data.n === 2 && m.deliveryCount === 1) throw new Error("database busy");
      if (m.data.n === 3) throw new PermanentFailure("no such pool");
    });
    await w.send(1);
    await w.send(2);
    await w.send(3);
    await w.sendUnknown();

    const acked = await otel.otlp.waitForMetric(
      (p) => handled(w.durable, "DoWork", "ack")(p) && p.count === 2,
    );
    expect(acked).toMatchObject({ kind: "histogram", unit: "s", service: "bus-metrics-test" });
    expect(acked.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.operation.name": "process",
    });
    expect(acked.attributes["error.type"]).toBeUndefined();
    expect(acked.sum).toBeGreaterThan(0);
    expect(acked.bucketCounts?.reduce((a, b) => a + b, 0)).toBe(2);

    const retried = await otel.otlp.waitForMetric(handled(w.durable, "DoWork", "retry"));
    expect(retried).toMatchObject({ count: 1, attributes: { "error.type": "Error" } });
    const deadLettered = await otel.otlp.waitForMetric(handled(w.durable, "DoWork", "dead_letter"));
    expect(deadLettered).toMatchObject({ count: 1, attributes: { "error.type": "PermanentFailure" } });
    // A type this consumer does not know is one bounded value, whatever the header said.
    const unknown = await otel.otlp.waitForMetric(handled(w.durable, "_OTHER", "dead_letter"));
    expect(unknown).toMatchObject({ count: 1, attributes: { "error.type": "ValidationFailed" } });

    const ours = otel.otlp.metrics.filter(
      (p) =>
        p.name === "messaging.process.duration" &&
        p.attributes["messaging.consumer.group.name"] === w.durable,
    );
    expect(ours.length).toBeGreaterThan(0);
    for (const p of ours) {
      for (const value of Object.values(p.attributes)) expect(String(value)).not.toContain(nats.namespace);
    }
  });

  test("report the durable's pending, unacknowledged and redelivered messages from its consumer info", async ({
    nats,
  }) => {
    const release = gate();
    const deliveries: number[] = [];
    const w = await worker(nats, async (m) => {
      if (m.data.n !== 1) return;
      deliveries.push(m.deliveryCount);
      // First delivery fails (redelivered 50 ms later), the second holds the only worker.
      if (m.deliveryCount === 1) throw new Error("not yet");
      await release.opened;
    });
    onTestFinished(release.open);
    await w.send(1);
    await waitFor("the redelivery to be in the handler", () => deliveries.includes(2));
    await w.send(2);
    await w.send(3);

    const series = (name: string, value: number) => (p: ReceivedMetricPoint) =>
      p.name === name &&
      p.attributes["messaging.consumer.group.name"] === w.durable &&
      p.attributes["mikrom.stream"] === w.stream &&
      p.value === value;
    const pending = await otel.otlp.waitForMetric(series("mikrom.consumer.pending", 2));
    expect(pending).toMatchObject({ kind: "gauge", unit: "{message}" });
    await otel.otlp.waitForMetric(series("mikrom.consumer.ack_pending", 1));
    await otel.otlp.waitForMetric(series("mikrom.consumer.redelivered", 1));

    release.open();
    await otel.otlp.waitForMetric(series("mikrom.consumer.pending", 0));
  });
});
