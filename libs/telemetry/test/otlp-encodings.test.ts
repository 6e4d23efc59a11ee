// The SDK exports spans as protobuf unless told otherwise: the test receiver (and with it the
// benchmark, which measures export as deployed) reads that encoding as it reads JSON.
import { type ReceivedSpan, startTestTelemetry } from "@mikrom/testkit";
import { describe, expect, test } from "vitest";
import { withSpan } from "../src/index.ts";

async function exported(tracesProtocol: "http/json" | "http/protobuf"): Promise<ReceivedSpan[]> {
  const otel = await startTestTelemetry({
    serviceName: "encodings",
    traces: true,
    metrics: false,
    tracesProtocol,
  });
  try {
    await withSpan(
      "service.test.outer",
      { "a.text": "häj", "a.int": -42, "a.double": 1.5, "a.bool": true },
      () =>
        withSpan("service.test.inner", {}, async () => {
          throw new Error("it broke");
        }).catch(() => {}),
    );
    await otel.telemetry.flush();
    return await otel.otlp.waitFor((all) => all.length >= 2);
  } finally {
    await otel.stop();
  }
}

describe("spans exported over OTLP/HTTP", () => {
  test("read the same from protobuf as from JSON: names, kinds, attributes, parents, status", async () => {
    const shape = (spans: ReceivedSpan[]) => {
      const outer = spans.find((s) => s.name === "service.test.outer")!;
      const inner = spans.find((s) => s.name === "service.test.inner")!;
      expect(inner.parentSpanId).toBe(outer.spanId);
      expect(inner.traceId).toBe(outer.traceId);
      expect(outer.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(outer.spanId).toMatch(/^[0-9a-f]{16}$/);
      return [outer, inner].map(({ service, name, kind, attributes, status }) => ({
        service,
        name,
        kind,
        attributes,
        status,
      }));
    };
    const json = shape(await exported("http/json"));
    const protobuf = shape(await exported("http/protobuf"));
    expect(protobuf).toEqual(json);
    expect(protobuf[0]!.attributes).toMatchObject({
      "a.text": "häj",
      "a.int": -42,
      "a.double": 1.5,
      "a.bool": true,
    });
    expect(protobuf[1]!.status).toEqual({ code: 2, message: "it broke" });
  });
});
