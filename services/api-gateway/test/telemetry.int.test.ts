import { setLogDestination, startTelemetry } from "@mikrom/telemetry";
// The telemetry library's own test receiver: spans arrive through the real OTLP exporter.
import { captureLogs, expect, SpanKindOtlp, startOtlpReceiver, test } from "@mikrom/testkit";
import { world } from "./support/world.ts";

test("a create is an api.vm.create span under the HTTP server span, publishing the command inside it; request logs name the user", async ({
  db,
  nats,
}) => {
  const receiver = await startOtlpReceiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = "http/json";
  process.env.OTEL_TRACES_EXPORTER = "otlp";
  process.env.OTEL_METRICS_EXPORTER = "none";
  const telemetry = await startTelemetry({ serviceName: "api-gateway" });
  const logs = captureLogs();
  setLogDestination(logs);
  const w = await world(db.url, nats);
  try {
    const res = await w.gw.post(
      "/api/v1/vms",
      { name: "traced" },
      { ...w.a.auth, "X-Request-ID": "req-traced-create" },
    );
    expect(res.status).toBe(201);
    const vm = await res.json();
    await telemetry.flush();
    const spans = await receiver.waitFor((all) => all.some((s) => s.name === "api.vm.create"));
    const server = spans.find(
      (s) => s.attributes["http.request.header.x-request-id"] === "req-traced-create",
    );
    expect(server).toMatchObject({ kind: SpanKindOtlp.SERVER, name: "POST /api/v1/vms" });
    const operation = spans.find((s) => s.name === "api.vm.create");
    expect(operation).toMatchObject({ traceId: server!.traceId, parentSpanId: server!.spanId });
    expect(operation!.attributes["vm.id"]).toBe(vm.vm_id);
    const publish = spans.find((s) => s.name === `send ${nats.namespace}.cmd.vm.create`);
    expect(publish).toMatchObject({
      kind: SpanKindOtlp.PRODUCER,
      traceId: server!.traceId,
      parentSpanId: operation!.spanId,
    });

    const completed = logs.lines.find(
      (l) => l.request_id === "req-traced-create" && l.message === "Request completed",
    );
    expect(completed).toMatchObject({ user_id: String(w.a.id), status_code: 201, trace_id: server!.traceId });
    expect(typeof completed!.user_name).toBe("string");
    expect(completed!.vm_id).toBe(vm.vm_id);
  } finally {
    await w.close();
    setLogDestination(undefined);
    await telemetry.shutdown();
    await receiver.close();
  }
});
