import { ensureContextManager } from "./context-manager.ts";

export { BAGGAGE_KEYS } from "./baggage.ts";
export {
  detached,
  getContext,
  LOG_CONTEXT_FIELDS,
  type LogContext,
  type LogContextField,
  setContext,
  withContext,
} from "./context.ts";
export { type HttpTelemetryOptions, httpTelemetry } from "./http.ts";
export {
  createLogger,
  errorFields,
  type LogDestination,
  type Logger,
  setLogDestination,
  setServiceName,
} from "./logger.ts";
export { type HandleSpanOptions, type PublishSpanOptions, traceHandle, tracePublish } from "./messaging.ts";
export {
  DURATION_BUCKETS_S,
  type GaugeRegistration,
  type Histogram,
  type HistogramOptions,
  histogram,
  type InstrumentOptions,
  type MetricAttributes,
  type Observe,
  observeGauge,
  observeGauges,
} from "./metrics.ts";
export { traceTransaction } from "./pg.ts";
export {
  extractCarrier,
  extractHeaders,
  injectCarrier,
  injectHeaders,
  logContextFromBaggage,
  propagator,
  runInCarrier,
  runInExtracted,
} from "./propagation.ts";
export { isSecretKey, REDACTED, redact } from "./redact.ts";
export { startTelemetry, type Telemetry, type TelemetryOptions } from "./sdk.ts";
export { currentSpanId, currentTraceId, recordError, withSpan } from "./spans.ts";

ensureContextManager();
