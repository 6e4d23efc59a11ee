import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseLogLine } from "@mikrom/testkit";
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
