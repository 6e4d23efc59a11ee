import { setLogDestination, startTelemetry, type Telemetry } from "@mikrom/telemetry";
import { type OtlpReceiver, startOtlpReceiver } from "./otlp-receiver.ts";

export interface TestTelemetryOptions {
  serviceName: string;
  /** Export metrics to the receiver (default true). */
  metrics?: boolean;
  /** Export spans to the receiver (default false). */
  traces?: boolean;
  /** How spans are encoded (default JSON; protobuf is what services send unless told otherwise). */
  tracesProtocol?: "http/json" | "http/protobuf";
  /**
   * How often metrics are exported. Short by default so a test waits briefly for a point; a test
   * that exports with `telemetry.flush()` sets it long, so what a point holds is known when it arrives.
   */
  metricIntervalMs?: number;
  /** Drop the process's log lines until stop (tests that only look at what is exported). */
  silenceLogs?: boolean;
}

export interface TestTelemetry {
  /** The receiver the SDK exports to, over OTLP/HTTP. */
  otlp: OtlpReceiver;
  telemetry: Telemetry;
  /** Shuts telemetry down (flushing it), closes the receiver, and puts the environment and logs back. */
  stop(): Promise<void>;
}

const VARIABLES = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
  "OTEL_TRACES_EXPORTER",
  "OTEL_METRICS_EXPORTER",
  "OTEL_METRIC_EXPORT_INTERVAL",
] as const;

/**
 * Starts an in-process OTLP receiver and the telemetry SDK exporting to it, configured the way a
 * deployment would (the OTEL_* environment), so tests see what a collector would receive.
 */
export async function startTestTelemetry(options: TestTelemetryOptions): Promise<TestTelemetry> {
  const {
    serviceName,
    metrics = true,
    traces = false,
    tracesProtocol = "http/json",
    metricIntervalMs = 200,
    silenceLogs = false,
  } = options;
  if (silenceLogs) setLogDestination({ write: () => true });
  const saved = VARIABLES.map((name) => [name, process.env[name]] as const);
  const otlp = await startOtlpReceiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.endpoint;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = "http/json";
  process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = tracesProtocol;
  process.env.OTEL_TRACES_EXPORTER = traces ? "otlp" : "none";
  process.env.OTEL_METRICS_EXPORTER = metrics ? "otlp" : "none";
  if (metrics) process.env.OTEL_METRIC_EXPORT_INTERVAL = String(metricIntervalMs);
  const telemetry = await startTelemetry({ serviceName });
  return {
    otlp,
    telemetry,
    async stop(): Promise<void> {
      await telemetry.shutdown();
      await otlp.close();
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      if (silenceLogs) setLogDestination(undefined);
    },
  };
}
