import { type ReceivedMetricPoint, startTestTelemetry, type TestTelemetry } from "@mikrom/testkit";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { histogram, httpTelemetry, observeGauge } from "../src/index.ts";

// Taken at module scope, before any SDK exists: they must still report once telemetry starts.
const early = histogram("mikrom.test.early", { unit: "s", description: "recorded after a late start" });
let gaugeValue = 1;
const earlyGauge = observeGauge("mikrom.test.gauge", { unit: "{thing}", description: "test" }, (observe) =>
  observe(gaugeValue, { which: "early" }),
);

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({
    serviceName: "metrics-test",
    // Long: the tests export with otel.telemetry.flush(), so what a point holds is known when it arrives.
    metricIntervalMs: 60_000,
    silenceLogs: true,
  });
});
afterAll(async () => {
  earlyGauge.remove();
  await otel.stop();
});

async function exported(predicate: (p: ReceivedMetricPoint) => boolean): Promise<ReceivedMetricPoint> {
  const before = otel.otlp.metrics.length;
  await otel.telemetry.flush();
  const fresh = otel.otlp.metrics.slice(before);
  const found = fresh.findLast(predicate);
  if (!found) throw new Error(`not in the export: ${JSON.stringify(fresh.map((p) => p.name))}`);
  return found;
}

describe("metrics", () => {
  it("export http.server.request.duration as a histogram by method, route template and status", async () => {
    const app = new Hono();
    app.use(httpTelemetry());
    app.get("/api/v1/vms/:vm_id", (c) => c.json({ ok: true }));
    await app.request("/api/v1/vms/srv-00000001");
    await app.request("/api/v1/vms/srv-00000002");
    await app.request("/nowhere");

    const ok = await exported(
      (p) => p.name === "http.server.request.duration" && p.attributes["http.route"] === "/api/v1/vms/:vm_id",
    );
    expect(ok).toMatchObject({
      kind: "histogram",
      unit: "s",
      count: 2,
      attributes: { "http.request.method": "GET", "http.response.status_code": 200 },
    });
    const notFound = await exported(
      (p) => p.name === "http.server.request.duration" && p.attributes["http.response.status_code"] === 404,
    );
    expect(notFound.attributes["http.route"]).toBeUndefined();
  });

  it("keep a histogram taken before startTelemetry recording into the SDK started later", async () => {
    early.record(0.5, { step: "one" });
    const point = await exported((p) => p.name === "mikrom.test.early");
    expect(point).toMatchObject({ count: 1, sum: 0.5, attributes: { step: "one" } });
  });

  it("call a gauge registered before startTelemetry at each collection, and no more once removed", async () => {
    gaugeValue = 7;
    expect(await exported((p) => p.name === "mikrom.test.gauge")).toMatchObject({
      kind: "gauge",
      value: 7,
      attributes: { which: "early" },
    });

    let calls = 0;
    const late = observeGauge("mikrom.test.gauge", { unit: "{thing}", description: "test" }, (observe) => {
      calls++;
      observe(3, { which: "late" });
    });
    expect(await exported((p) => p.attributes.which === "late")).toMatchObject({ value: 3 });
    late.remove();
    const callsAtRemoval = calls;
    await exported((p) => p.attributes.which === "early");
    expect(calls).toBe(callsAtRemoval);
  });

  it("report nothing for a gauge whose callback fails, and keep the other gauges", async () => {
    const broken = observeGauge("mikrom.test.broken", { unit: "{thing}", description: "test" }, () => {
      throw new Error("database unreachable");
    });
    try {
      const before = otel.otlp.metrics.length;
      await exported((p) => p.name === "mikrom.test.gauge");
      expect(otel.otlp.metrics.slice(before).some((p) => p.name === "mikrom.test.broken")).toBe(false);
    } finally {
      broken.remove();
    }
  });
});
