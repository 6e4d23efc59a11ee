import type { ExportResult } from "@opentelemetry/core";
import type { IMetricReader } from "@opentelemetry/sdk-metrics";
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import {
  BatchSpanProcessor,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace";
import { createLogger } from "./logger.ts";

type Env = Record<string, string | undefined>;

function list(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
}

function otlpEndpointConfigured(env: Env, signal: "TRACES" | "METRICS"): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]);
}

/**
 * Which trace exporters run: `OTEL_TRACES_EXPORTER` (otlp, console, none) when set; otherwise otlp when an
 * OTLP endpoint is configured and none when not (the spec's default is otlp to localhost, which on a
 * developer machine without a collector only produces export errors). `OTEL_EXPORT_CONSOLE=true` adds console.
 */
export function traceExporterNames(env: Env): Set<string> {
  const names = new Set(list(env.OTEL_TRACES_EXPORTER));
  if (names.size === 0 && otlpEndpointConfigured(env, "TRACES")) names.add("otlp");
  if (env.OTEL_EXPORT_CONSOLE?.toLowerCase() === "true") names.add("console");
  names.delete("none");
  return names;
}

function protocol(env: Env, signal: "TRACES" | "METRICS"): string {
  return (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf")
    .trim()
    .toLowerCase();
}

function positive(raw: string | undefined): number | undefined {
  const value = raw === undefined ? Number.NaN : Number(raw);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

async function otlpTraceExporter(env: Env): Promise<SpanExporter> {
  // Loaded on demand: each protocol pulls in its own transport (gRPC is heavy).
  switch (protocol(env, "TRACES")) {
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter();
    default:
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
  }
}

/**
 * The console exporter: each finished span as one JSON log line through the shared logger, so that stdout
 * stays one JSON object per line (the SDK's ConsoleSpanExporter prints multi-line object dumps).
 */
export class LogSpanExporter implements SpanExporter {
  readonly #log = createLogger("opentelemetry.spans");

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    for (const span of spans) {
      const ctx = span.spanContext();
      this.#log.info(
        {
          span: {
            name: span.name,
            kind: span.kind,
            trace_id: ctx.traceId,
            span_id: ctx.spanId,
            parent_span_id: span.parentSpanContext?.spanId,
            duration_ms: span.duration[0] * 1e3 + span.duration[1] / 1e6,
            status: span.status,
            attributes: span.attributes,
          },
        },
        "span",
      );
    }
    resultCallback({ code: 0 });
  }

  async shutdown(): Promise<void> {}
  async forceFlush(): Promise<void> {}
}

export async function spanProcessorsFromEnv(env: Env): Promise<SpanProcessor[]> {
  const processors: SpanProcessor[] = [];
  const names = traceExporterNames(env);
  if (names.has("otlp")) {
    processors.push(
      new BatchSpanProcessor({
        exporter: await otlpTraceExporter(env),
        // 8192 rather than the SDK's 2048: a burst of messages (two spans each) must not drop spans.
        maxQueueSize: positive(env.OTEL_BSP_MAX_QUEUE_SIZE) ?? 8192,
        scheduledDelayMillis: positive(env.OTEL_BSP_SCHEDULE_DELAY),
        exportTimeoutMillis: positive(env.OTEL_BSP_EXPORT_TIMEOUT),
        maxExportBatchSize: positive(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE),
      }),
    );
  }
  if (names.has("console")) processors.push(new SimpleSpanProcessor({ exporter: new LogSpanExporter() }));
  for (const name of names) {
    if (name !== "otlp" && name !== "console") {
      createLogger("mikrom.telemetry").warn(
        { exporter: name },
        "Unsupported OTEL_TRACES_EXPORTER value ignored",
      );
    }
  }
  return processors;
}

/** Metrics go over OTLP when `OTEL_METRICS_EXPORTER` says otlp, or (unset) when an OTLP endpoint is configured. */
export async function metricReadersFromEnv(env: Env): Promise<IMetricReader[]> {
  const names = new Set(list(env.OTEL_METRICS_EXPORTER));
  if (names.size === 0 && otlpEndpointConfigured(env, "METRICS")) names.add("otlp");
  if (!names.has("otlp")) return [];
  const exporter =
    protocol(env, "METRICS") === "http/json"
      ? new (await import("@opentelemetry/exporter-metrics-otlp-http")).OTLPMetricExporter()
      : protocol(env, "METRICS") === "grpc"
        ? new (await import("@opentelemetry/exporter-metrics-otlp-grpc")).OTLPMetricExporter()
        : new (await import("@opentelemetry/exporter-metrics-otlp-proto")).OTLPMetricExporter();
  const interval = positive(env.OTEL_METRIC_EXPORT_INTERVAL) ?? 60_000;
  return [
    new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: interval,
      exportTimeoutMillis: Math.min(positive(env.OTEL_METRIC_EXPORT_TIMEOUT) ?? 30_000, interval),
    }),
  ];
}
