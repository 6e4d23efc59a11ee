import {
  type Context,
  context,
  isSpanContextValid,
  type Span,
  SpanKind,
  type SpanOptions,
  TraceFlags,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import { RandomIdGenerator, type Sampler, SamplingDecision } from "@opentelemetry/sdk-trace";

/**
 * The tracer of a process that exports no span: every span is a non-recording one (no attributes,
 * timings or processors), yet it has its own span id under its parent's trace id, so logs carry
 * trace and span ids and the context travels to the next service as it would with export on. The
 * sampler still decides the sampled flag that travels: a process without an exporter must not turn
 * tracing off for the services after it that have one.
 */
export class IdsOnlyTracerProvider implements TracerProvider {
  readonly #tracer: Tracer;

  constructor(sampler: Sampler) {
    this.#tracer = new IdsOnlyTracer(sampler);
  }

  getTracer(): Tracer {
    return this.#tracer;
  }
}

type Fn = (span: Span) => unknown;

class IdsOnlyTracer implements Tracer {
  readonly #sampler: Sampler;
  readonly #ids = new RandomIdGenerator();

  constructor(sampler: Sampler) {
    this.#sampler = sampler;
  }

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    const parentCtx = options.root ? trace.deleteSpan(ctx) : ctx;
    const parent = trace.getSpanContext(parentCtx);
    const inherited = parent && isSpanContextValid(parent) ? parent : undefined;
    const traceId = inherited?.traceId ?? this.#ids.generateTraceId();
    const { decision } = this.#sampler.shouldSample(
      parentCtx,
      traceId,
      name,
      options.kind ?? SpanKind.INTERNAL,
      options.attributes ?? {},
      options.links ?? [],
    );
    return trace.wrapSpanContext({
      traceId,
      spanId: this.#ids.generateSpanId(),
      traceFlags: decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      ...(inherited?.traceState && { traceState: inherited.traceState }),
    });
  }

  startActiveSpan<F extends Fn>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends Fn>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends Fn>(name: string, options: SpanOptions, ctx: Context, fn: F): ReturnType<F>;
  startActiveSpan<F extends Fn>(name: string, ...rest: unknown[]): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = (rest.length >= 2 ? rest[0] : {}) as SpanOptions;
    const ctx = (rest.length >= 3 ? rest[1] : context.active()) as Context;
    const span = this.startSpan(name, options, ctx);
    return context.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}
