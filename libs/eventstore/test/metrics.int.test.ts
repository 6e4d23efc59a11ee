import { describe, expect, startTestTelemetry, type TestTelemetry, test } from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { databaseName } from "../src/metrics.ts";
import type { TallyEvent } from "./fixtures/tally.ts";
import { openTallyStore } from "./support.ts";

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "eventstore-metrics-test" });
});
afterAll(() => otel.stop());

const opened = (tallyId: string): TallyEvent => ({ type: "TallyOpened", data: { tallyId, name: tallyId } });

describe("the outbox backlog gauge", () => {
  test("reports the rows no relay has published yet, per database", async ({ db }) => {
    const store = await openTallyStore(db.url);
    try {
      const database = databaseName(db.url);
      const backlog = (n: number) =>
        otel.otlp.waitForMetric(
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
