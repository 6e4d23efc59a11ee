import { SpanKindOtlp, startTestTelemetry, type TestTelemetry } from "@mikrom/testkit";
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  currentTraceId,
  getContext,
  traceHandle,
  tracePublish,
  withContext,
  withSpan,
} from "../src/index.ts";

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "messaging-test", traces: true, metrics: false });
});
afterAll(() => otel.stop());

describe("messaging spans", () => {
  it("hands the handler the LogContext and trace of the publisher, in a consumer span under the producer", async () => {
    const h = headers();
    const published = await withContext({ user_id: "u-1", request_id: "r-1", action: "vm.create" }, () =>
      tracePublish({ subject: "mikrom.cmd.vm.create", messageId: "m-1", headers: h }, async () =>
        currentTraceId(),
      ),
    );
    const seen = await withContext({ request_id: "consumer-loop" }, () =>
      traceHandle({ subject: "mikrom.cmd.vm.create", messageId: "m-1", headers: h }, async () => ({
        fields: getContext(),
        traceId: currentTraceId(),
      })),
    );
    expect(seen.fields).toEqual({ user_id: "u-1", request_id: "r-1", action: "vm.create" });
    expect(seen.traceId).toBe(published);
    await otel.telemetry.flush();
    const spans = await otel.otlp.waitFor((all) => all.filter((s) => s.traceId === published).length >= 2);
    const producer = spans.find((s) => s.traceId === published && s.kind === SpanKindOtlp.PRODUCER)!;
    const consumer = spans.find((s) => s.traceId === published && s.kind === SpanKindOtlp.CONSUMER)!;
    expect(producer.name).toBe("send mikrom.cmd.vm.create");
    expect(consumer.name).toBe("process mikrom.cmd.vm.create");
    expect(consumer.parentSpanId).toBe(producer.spanId);
  });

  it("records a handler's failure on the consumer span and rethrows it", async () => {
    const h = headers();
    const traceId = await tracePublish({ subject: "mikrom.evt.vm.x.Failed", headers: h }, async () =>
      currentTraceId(),
    );
    await expect(
      traceHandle({ subject: "mikrom.evt.vm.x.Failed", headers: h, deliveryCount: 3 }, async () => {
        throw new RangeError("no capacity");
      }),
    ).rejects.toThrow("no capacity");
    await otel.telemetry.flush();
    const spans = await otel.otlp.waitFor((all) =>
      all.some((s) => s.traceId === traceId && s.kind === SpanKindOtlp.CONSUMER),
    );
    const consumer = spans.find((s) => s.traceId === traceId && s.kind === SpanKindOtlp.CONSUMER)!;
    expect(consumer.status).toMatchObject({ code: 2, message: "no capacity" });
    expect(consumer.attributes).toMatchObject({
      "error.type": "RangeError",
      "nats.message.delivery_count": 3,
    });
  });

  it("records a failed service span as an error and rethrows", async () => {
    let traceId: string | undefined;
    await expect(
      withSpan("service.vm.create", { "vm.id": "srv-01020304" }, async () => {
        traceId = currentTraceId();
        throw new Error("refused");
      }),
    ).rejects.toThrow("refused");
    await otel.telemetry.flush();
    const spans = await otel.otlp.waitFor((all) => all.some((s) => s.traceId === traceId));
    const span = spans.find((s) => s.traceId === traceId)!;
    expect(span).toMatchObject({
      name: "service.vm.create",
      kind: SpanKindOtlp.INTERNAL,
      status: { code: 2 },
    });
    expect(span.attributes["vm.id"]).toBe("srv-01020304");
  });
});
