import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type LogLine, parseLogLine } from "@mikrom/testkit";
import { describe, expect, it } from "vitest";
import { traceExporterNames } from "../src/exporters.ts";

describe("trace exporters from the environment", () => {
  it("exports nothing when neither an exporter nor an OTLP endpoint is configured", () => {
    expect([...traceExporterNames({})]).toEqual([]);
  });

  it("exports over OTLP when an endpoint is configured", () => {
    expect([...traceExporterNames({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://tempo:4318" })]).toEqual(["otlp"]);
    expect([
      ...traceExporterNames({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://tempo:4318/v1/traces" }),
    ]).toEqual(["otlp"]);
  });

  it("follows OTEL_TRACES_EXPORTER, and OTEL_EXPORT_CONSOLE=true adds the console", () => {
    expect([
      ...traceExporterNames({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x" }),
    ]).toEqual([]);
    expect([...traceExporterNames({ OTEL_TRACES_EXPORTER: "otlp,console" })]).toEqual(["otlp", "console"]);
    expect([...traceExporterNames({ OTEL_EXPORT_CONSOLE: "true" })]).toEqual(["console"]);
  });
});

describe("the console exporter", () => {
  it("prints each finished span as one JSON log line, keeping stdout one object per line", () => {
    const script = [
      'import { startTelemetry, withSpan } from "@mikrom/telemetry";',
      'const t = await startTelemetry({ serviceName: "console-test" });',
      'await withSpan("service.vm.create", { "vm.id": "srv-1" }, async () => {});',
      "await t.shutdown();",
    ].join("\n");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: {
        ...process.env,
        OTEL_EXPORT_CONSOLE: "true",
        OTEL_TRACES_EXPORTER: "",
        OTEL_EXPORTER_OTLP_ENDPOINT: "",
      },
      encoding: "utf8",
    });
    const lines = out
      .trim()
      .split("\n")
      .map((line) => parseLogLine(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      logger: "opentelemetry.spans",
      service: "console-test",
      span: { name: "service.vm.create", attributes: { "vm.id": "srv-1" } },
    });
  });
});

describe("a process that exports no span", () => {
  /** Runs a span with a child in a process without an exporter; what its spans, headers and logs said. */
  function run(env: Record<string, string>): { spans: Record<string, unknown>; lines: LogLine[] } {
    const script = [
      'import { createLogger, injectCarrier, startTelemetry, withSpan } from "@mikrom/telemetry";',
      'import { trace } from "@opentelemetry/api";',
      'const t = await startTelemetry({ serviceName: "quiet" });',
      "const seen = {};",
      'await withSpan("outer", { "vm.id": "srv-1" }, async () => {',
      "  const outer = trace.getActiveSpan();",
      "  seen.outer = { ...outer.spanContext(), recording: outer.isRecording() };",
      '  createLogger("quiet").info("inside");',
      '  await withSpan("inner", {}, async () => {',
      "    const headers = {};",
      "    injectCarrier(headers);",
      "    seen.inner = { ...trace.getActiveSpan().spanContext(), traceparent: headers.traceparent };",
      "  });",
      "});",
      "await t.shutdown();",
      "process.stdout.write(JSON.stringify({ spans: seen }) + '\\n');",
    ].join("\n");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: {
        ...process.env,
        OTEL_TRACES_EXPORTER: "none",
        OTEL_EXPORT_CONSOLE: "",
        OTEL_EXPORTER_OTLP_ENDPOINT: "",
        OTEL_TRACE_SAMPLE_RATE: "",
        LOG_FORMAT: "json",
        LOG_LEVEL: "info",
        ...env,
      },
      encoding: "utf8",
    });
    const lines = out.trim().split("\n");
    return { spans: JSON.parse(lines.pop()!).spans, lines: lines.map((line) => parseLogLine(line)) };
  }

  it("records nothing, yet its spans carry ids to the logs and a sampled traceparent to the next service", () => {
    const { spans, lines } = run({});
    const outer = spans.outer as { traceId: string; spanId: string; recording: boolean };
    const inner = spans.inner as { traceId: string; spanId: string; traceparent: string };
    expect(outer.recording).toBe(false);
    expect(outer.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(inner.traceId).toBe(outer.traceId);
    expect(inner.spanId).not.toBe(outer.spanId);
    // Sampled: a service after this one that exports records the trace whole.
    expect(inner.traceparent).toBe(`00-${inner.traceId}-${inner.spanId}-01`);
    const logged = lines.find((l) => l.message === "inside");
    expect(logged).toMatchObject({ trace_id: outer.traceId, span_id: outer.spanId });
  });

  it("still passes on the sampler's decision: at a sample rate of 0 the traceparent says not sampled", () => {
    const { spans } = run({ OTEL_TRACE_SAMPLE_RATE: "0" });
    const inner = spans.inner as { traceId: string; spanId: string; traceparent: string };
    expect(inner.traceparent).toBe(`00-${inner.traceId}-${inner.spanId}-00`);
  });
});
