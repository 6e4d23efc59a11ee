import { startTelemetry, type Telemetry } from "@mikrom/telemetry";
import { describe, expect, type OtlpReceiver, startOtlpReceiver, test } from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { databaseName } from "../src/metrics.ts";
import type { TallyEvent } from "./fixtures/tally.ts";
import { openTallyStore } from "./support.ts";

let receiver: OtlpReceiver;
let telemetry: Telemetry;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = "http/json";
  process.env.OTEL_TRACES_EXPORTER = "none";
  process.env.OTEL_METRICS_EXPORTER = "otlp";
  process.env.OTEL_METRIC_EXPORT_INTERVAL = "200";
  telemetry = await startTelemetry({ serviceName: "eventstore-metrics-test" });
});
afterAll(async () => {
  await telemetry.shutdown();
  await receiver.close();
});

const opened = (tallyId: string): TallyEvent => ({ type: "TallyOpened", data: { tallyId, name: tallyId } });

describe("the outbox backlog gauge", () => {
  test("reports the rows no relay has published yet, per database", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      const database = databaseName(db.url);
      const backlog = (n: number) =>
        receiver.waitForMetric(
          (p) =>
            p.name === "mikrom.outbox.backlog" && p.attributes["db.namespace"] === database && p.value === n,
        );
      await backlog(0);
      // No relay runs: the three rows stay in the outbox.
      for (const id of ["a", "b", "c"])
        await store.append(`tally-${id}`, [opened(id)], { expectedVersion: 0 });
      const point = await backlog(3);
      expect(point).toMatchObject({ kind: "gauge", unit: "{message}", service: "eventstore-metrics-test" });
    } finally {
      await store.close();
    }
  });
});
