import { randomUUID } from "node:crypto";
import { logs, metrics, propagation, trace } from "@opentelemetry/api";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { envDetector, hostDetector, osDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { installDiagLogger } from "./diag.ts";
import { metricReadersFromEnv, spanProcessorsFromEnv } from "./exporters.ts";
import { IdsOnlyTracerProvider } from "./ids-only.ts";
import { setServiceName } from "./logger.ts";
import { attachObservers } from "./metrics.ts";
import { patchLoadedPg, statementsInTransactions } from "./pg.ts";
import { propagator } from "./propagation.ts";
import { samplerFromEnv } from "./sampler.ts";
import { resetTracer } from "./spans.ts";

export interface TelemetryOptions {
  serviceName: string;
  serviceVersion?: string;
}

export interface Telemetry {
  /** Flushes spans and metrics still buffered, then stops the SDK. Safe to call twice. */
  shutdown(): Promise<void>;
  /**
   * Exports the spans buffered so far, and collects and exports the metrics now, without stopping
   * (tests, and before a deliberate exit).
   */
  flush(): Promise<void>;
}

let running: Telemetry | undefined;

/**
 * Starts OpenTelemetry for a service: resource (service name, version, instance id), parent-based sampler,
 * exporters from the `OTEL_*` variables, the W3C + baggage + B3 propagator, the `pg` instrumentation.
 * Call it first thing in main(); `await telemetry.shutdown()` last, so the final spans reach Tempo.
 */
export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  const env = process.env;
  if (running) await running.shutdown();
  setServiceName(opts.serviceName);
  installDiagLogger(env);

  const spanProcessors = await spanProcessorsFromEnv(env);
  const sampler = statementsInTransactions(samplerFromEnv(env));

  const metricReaders = await metricReadersFromEnv(env);

  const resource = resourceFromAttributes({
    "service.name": opts.serviceName,
    "service.version": opts.serviceVersion ?? env.SERVICE_VERSION ?? "0.0.0",
    "service.namespace": "mikrom",
    "service.instance.id": randomUUID(),
  });

  const pg = new PgInstrumentation({
    // A query outside any operation (a relay polling, LISTEN) would be a root trace of its own in Tempo.
    requireParentSpan: true,
    // Query parameters may hold secrets (password hashes, tokens): keep them out of spans.
    enhancedDatabaseReporting: false,
    // A span per pool checkout says nothing the query spans do not, and costs on every statement.
    ignoreConnectSpans: true,
  });

  // Reinstalling (tests start telemetry more than once in a process): the API refuses a second global.
  trace.disable();
  metrics.disable();
  logs.disable();
  propagation.disable();
  resetTracer();

  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    resource,
    // The process-wide detectors only (the process detector would put command lines, and with them
    // secrets passed as arguments, on every span).
    resourceDetectors: [hostDetector, osDetector, envDetector],
    // The AsyncLocalStorage manager installed on import stays (see context-manager.ts).
    // biome-ignore lint/suspicious/noExplicitAny: the SDK accepts null ("keep the current manager") at runtime; its type does not say so
    contextManager: null as any,
    textMapPropagator: propagator,
    sampler,
    // None: the SDK then registers no tracer provider, and the ids-only one below takes its place.
    spanProcessors,
    metricReaders,
    // Logs go to stdout as JSON (collected into Loki), not through the SDK.
    logRecordProcessors: [],
    instrumentations: [pg],
  });
  sdk.start();
  // With no exporter, spans are not recorded at all, but still carry the ids the logs and the next
  // service need (see ids-only.ts).
  if (spanProcessors.length === 0) trace.setGlobalTracerProvider(new IdsOnlyTracerProvider(sampler));
  patchLoadedPg(pg);
  // Gauges registered before (or across an earlier SDK) report through this one from now on.
  attachObservers();

  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    async flush() {
      await Promise.all([
        ...spanProcessors.map((processor) => processor.forceFlush()),
        ...metricReaders.map((reader) => reader.forceFlush()),
      ]);
    },
    shutdown() {
      stopped ??= (async () => {
        try {
          await sdk.shutdown();
        } finally {
          pg.disable();
          trace.disable();
          metrics.disable();
          logs.disable();
          resetTracer();
          if (running === telemetry) running = undefined;
        }
      })();
      return stopped;
    },
  };
  running = telemetry;
  return telemetry;
}
