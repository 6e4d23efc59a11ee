import { type Attributes, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";

const TRACER_NAME = "@mikrom/telemetry";
const TRACER_VERSION = "0.1.0";

let cachedTracer: Tracer | undefined;

/**
 * The library's tracer. Cached because getTracer builds a key per call on the hot path of every message;
 * sdk.ts drops the cache when it (re)installs a provider, so a tracer from an earlier provider is not kept.
 */
export function tracer(): Tracer {
  cachedTracer ??= trace.getTracer(TRACER_NAME, TRACER_VERSION);
  return cachedTracer;
}

export function resetTracer(): void {
  cachedTracer = undefined;
}

/** Records an exception on a span and marks it ERROR, the way every helper here does. */
export function recordError(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.setAttribute("error.type", error.name || error.constructor.name);
  } else {
    span.recordException(String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
    span.setAttribute("error.type", typeof error);
  }
}

/** Awaits `fn` in `span`, recording a throw (rethrown), then ends the span. */
export async function endAfter<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    recordError(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Runs `fn` in an INTERNAL span (e.g. `service.vm.create`), active for everything `fn` awaits. A throw is
 * recorded on the span (exception event, ERROR status) and rethrown.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, (span) =>
    endAfter(span, () => fn(span)),
  );
}

/** The trace id of the active span, if there is one (sampled or not). */
export function currentTraceId(): string | undefined {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx) ? ctx.traceId : undefined;
}

/** The span id of the active span, if there is one. */
export function currentSpanId(): string | undefined {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx) ? ctx.spanId : undefined;
}
