export { InfrastructureMissing } from "./errors.ts";
export { describe, expect, type InfraFixtures, test } from "./fixtures.ts";
export { type Infrastructure, LOCAL_DATABASE_URL, LOCAL_NATS_URL, resolveInfrastructure } from "./infra.ts";
export { captureLogs, type LogLine, parseLogLine } from "./log-lines.ts";
export { uniqueName } from "./names.ts";
export { connectNats, createTestNats, type TestNats } from "./nats.ts";
export {
  type OtlpReceiver,
  type ReceivedMetricPoint,
  type ReceivedSpan,
  SpanKindOtlp,
  startOtlpReceiver,
} from "./otlp-receiver.ts";
export { createTestDatabase, type TestDatabase, withDatabase } from "./postgres.ts";
export { startTestTelemetry, type TestTelemetry, type TestTelemetryOptions } from "./telemetry.ts";
