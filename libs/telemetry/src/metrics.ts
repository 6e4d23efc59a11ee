import { type Histogram, type MeterProvider, metrics } from "@opentelemetry/api";

/**
 * Instruments, re-created when the global meter provider changes (the metrics API has no proxy: a
 * histogram taken before startTelemetry would stay a no-op forever).
 */
let provider: MeterProvider | undefined;
let httpServerDuration: Histogram | undefined;

export function httpServerDurationHistogram(): Histogram {
  const current = metrics.getMeterProvider();
  if (current !== provider || !httpServerDuration) {
    provider = current;
    httpServerDuration = current
      .getMeter("@mikrom/telemetry")
      .createHistogram("http.server.request.duration", {
        unit: "s",
        description: "Duration of HTTP server requests",
        advice: {
          explicitBucketBoundaries: [
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
          ],
        },
      });
  }
  return httpServerDuration;
}
