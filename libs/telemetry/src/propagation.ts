import type { MsgHdrs } from "@nats-io/nats-core";
import { Match } from "@nats-io/nats-core";
import {
  type Context,
  context,
  defaultTextMapGetter,
  ROOT_CONTEXT,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import { baggageHeader, withBaggageHeader } from "./baggage.ts";
import { type LogContext, logContextOf } from "./context.ts";

/**
 * W3C trace context + baggage + B3 as one propagator. Injects all three (B3 in its single-header form);
 * extracts `traceparent` when present (it also carries `tracestate`) and B3 (single or multi-header)
 * otherwise, rather than parsing both on every message: when both are sent they name the same span.
 * Baggage goes through baggage.ts.
 */
class TraceContextB3BaggagePropagator implements TextMapPropagator {
  readonly #w3c = new W3CTraceContextPropagator();
  readonly #b3 = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    this.#w3c.inject(ctx, carrier, setter);
    this.#b3.inject(ctx, carrier, setter);
    const baggage = baggageHeader(ctx);
    if (baggage) setter.set(carrier, "baggage", baggage);
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    let out = getter.get(carrier, "traceparent") ? this.#w3c.extract(ctx, carrier, getter) : ctx;
    if (out === ctx) out = this.#b3.extract(ctx, carrier, getter);
    const baggage = getter.get(carrier, "baggage");
    const header = Array.isArray(baggage) ? baggage.join(",") : baggage;
    return header ? withBaggageHeader(out, header) : out;
  }

  fields(): string[] {
    return [...this.#w3c.fields(), ...this.#b3.fields(), "baggage"];
  }
}

export const propagator: TextMapPropagator = new TraceContextB3BaggagePropagator();

/** nats.js matches header keys exactly: write in lower case, read exact first then case-insensitively. */
export const natsHeadersSetter: TextMapSetter<MsgHdrs> = {
  set(headers, key, value) {
    headers.set(key.toLowerCase(), value);
  },
};

export const natsHeadersGetter: TextMapGetter<MsgHdrs> = {
  keys(headers) {
    return headers.keys();
  },
  get(headers, key) {
    const exact = headers.get(key);
    if (exact) return exact;
    return headers.get(key, Match.IgnoreCase) || undefined;
  },
};

/** Plain objects (event metadata, HTTP header records): keys written in lower case, read case-insensitively. */
const recordSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key.toLowerCase()] = value;
  },
};

const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: defaultTextMapGetter.keys,
  get(carrier, key) {
    const exact = defaultTextMapGetter.get(carrier, key);
    if (exact !== undefined) return exact;
    const lower = key.toLowerCase();
    for (const k of Object.keys(carrier)) if (k.toLowerCase() === lower) return carrier[k];
    return undefined;
  },
};

/** The LogContext fields an extracted context holds (from its message's baggage). */
export function logContextFromBaggage(ctx: Context): LogContext {
  return logContextOf(ctx);
}

/** Writes traceparent/tracestate, b3 and baggage (with the LogContext) of the active context into NATS headers. */
export function injectHeaders(headers: MsgHdrs): void {
  propagator.inject(context.active(), headers, natsHeadersSetter);
}

/**
 * The context a message's headers hold, on top of the root context: a message without trace headers
 * starts a new trace rather than joining whatever happens to be active in the consumer loop.
 */
export function extractHeaders(headers: MsgHdrs | undefined): Context {
  if (!headers) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, headers, natsHeadersGetter);
}

/** Same as injectHeaders, into a plain object (event metadata, an outgoing HTTP request's headers). */
export function injectCarrier(carrier: Record<string, string>): void {
  propagator.inject(context.active(), carrier, recordSetter);
}

/** The context a plain carrier holds (keys matched case-insensitively), on top of the root context. */
export function extractCarrier(carrier: Record<string, string> | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, carrier, recordGetter);
}

/**
 * Runs `fn` in the trace and LogContext a carrier holds (e.g. an outbox relay publishing an event in the
 * context of the request that recorded it). Without a carrier, `fn` runs in the caller's context.
 */
export function runInCarrier<T>(carrier: Record<string, string> | undefined, fn: () => T): T {
  if (!carrier) return fn();
  return runInExtracted(extractCarrier(carrier), fn);
}

/** Runs `fn` in an extracted context, with the LogContext its baggage holds. */
export function runInExtracted<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}
