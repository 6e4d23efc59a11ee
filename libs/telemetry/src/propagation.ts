import type { MsgHdrs } from "@nats-io/nats-core";
import { Match } from "@nats-io/nats-core";
import {
  type Context,
  context,
  createContextKey,
  defaultTextMapGetter,
  isSpanContextValid,
  ROOT_CONTEXT,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import { isTracingSuppressed, parseTraceParent, TraceState } from "@opentelemetry/core";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import { baggageHeader, withBaggageHeader } from "./baggage.ts";
import { type LogContext, logContextOf } from "./context.ts";

/**
 * W3C trace context + baggage + B3 as one propagator. Injects all three (B3 in its single-header form);
 * extracts `traceparent` when present (it also carries `tracestate`) and B3 (single or multi-header)
 * otherwise: when both are sent they name the same span. Baggage goes through baggage.ts.
 *
 * This runs twice per message (inject on publish, extract on receipt), so the common case is done here
 * directly rather than through W3CTraceContextPropagator and B3SinglePropagator: the span context is
 * read once and `traceparent` and `b3` are both built from its parts, a version-00 `traceparent` is
 * parsed without the regular expression, and NATS headers are read in one pass over their entries
 * (each `MsgHdrs.get` builds and filters an array of every key). Anything unusual (another
 * `traceparent` version, B3 only) goes to the SDK's own parsers, so what is accepted does not change.
 */

/** The B3 propagator's debug-flag key (not exported; context keys are `Symbol.for(description)`). */
const B3_DEBUG_FLAG_KEY = createContextKey("OpenTelemetry Context Key B3 Debug Flag");

const b3 = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });

function flagsHex(flags: number): string {
  if (flags === 1) return "01";
  if (flags === 0) return "00";
  const byte = flags & 0xff;
  return byte < 16 ? `0${byte.toString(16)}` : byte.toString(16);
}

/** Calls `set(name, value)` for each header that carries `ctx`. */
function injectInto(ctx: Context, set: (name: string, value: string) => void): void {
  const spanContext = trace.getSpanContext(ctx);
  if (spanContext && isSpanContextValid(spanContext) && !isTracingSuppressed(ctx)) {
    const ids = `${spanContext.traceId}-${spanContext.spanId}`;
    set("traceparent", `00-${ids}-${flagsHex(spanContext.traceFlags)}`);
    const state = spanContext.traceState?.serialize();
    if (state) set("tracestate", state);
    set("b3", `${ids}-${ctx.getValue(B3_DEBUG_FLAG_KEY) || spanContext.traceFlags & 1}`);
  }
  const baggage = baggageHeader(ctx);
  if (baggage) set("baggage", baggage);
}

/** Hex digits in `s[from, to)`: -1 if any is not lower-case hex, else 1 if any is non-zero, else 0. */
function lowerHex(s: string, from: number, to: number): number {
  let nonZero = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (c !== 48) nonZero = 1;
    } else if (c >= 97 && c <= 102) nonZero = 1;
    else return -1;
  }
  return nonZero;
}

/**
 * A `traceparent` value as a span context, or undefined when invalid. Version 00 (55 characters, what
 * every current SDK sends) is checked by hand, exactly as the specification's grammar says; anything
 * else goes to the SDK's parser.
 */
export function parseTraceparent(value: string): SpanContext | undefined {
  if (
    value.length === 55 &&
    value.charCodeAt(0) === 48 &&
    value.charCodeAt(1) === 48 &&
    value.charCodeAt(2) === 45 &&
    value.charCodeAt(35) === 45 &&
    value.charCodeAt(52) === 45
  ) {
    if (lowerHex(value, 3, 35) !== 1 || lowerHex(value, 36, 52) !== 1 || lowerHex(value, 53, 55) === -1)
      return undefined;
    return {
      traceId: value.slice(3, 35),
      spanId: value.slice(36, 52),
      traceFlags: Number.parseInt(value.slice(53, 55), 16),
      isRemote: true,
    };
  }
  const parsed = parseTraceParent(value);
  return parsed ? { ...parsed, isRemote: true } : undefined;
}

/**
 * `ctx` with what the found header values carry: the `traceparent` trace (with `tracestate`), else B3
 * read through `getter`, then the baggage.
 */
function extractFrom<C>(
  ctx: Context,
  traceparent: string | undefined,
  tracestate: string | undefined,
  baggage: string | undefined,
  carrier: C,
  getter: TextMapGetter<C>,
): Context {
  const spanContext = traceparent ? parseTraceparent(traceparent) : undefined;
  let out: Context;
  if (spanContext) {
    if (tracestate) spanContext.traceState = new TraceState(tracestate);
    out = trace.setSpanContext(ctx, spanContext);
  } else {
    out = b3.extract(ctx, carrier, getter);
  }
  return baggage ? withBaggageHeader(out, baggage) : out;
}

function headerValue(value: string | string[] | undefined, join: boolean): string | undefined {
  if (!Array.isArray(value)) return value;
  return join ? value.join(",") : value[0];
}

class TraceContextB3BaggagePropagator implements TextMapPropagator {
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    injectInto(ctx, (name, value) => setter.set(carrier, name, value));
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    return extractFrom(
      ctx,
      headerValue(getter.get(carrier, "traceparent"), false),
      headerValue(getter.get(carrier, "tracestate"), true),
      headerValue(getter.get(carrier, "baggage"), true),
      carrier,
      getter,
    );
  }

  fields(): string[] {
    return ["traceparent", "tracestate", ...b3.fields(), "baggage"];
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

/** Writes traceparent/tracestate, b3 and baggage (with the LogContext) of `ctx` into NATS headers. */
export function injectHeadersFrom(ctx: Context, headers: MsgHdrs): void {
  // Fresh headers (every publish) get appended; set() would first scan for an existing key per header.
  const fresh = headers.keys().length === 0;
  injectInto(ctx, (name, value) => (fresh ? headers.append(name, value) : headers.set(name, value)));
}

/** Writes traceparent/tracestate, b3 and baggage (with the LogContext) of the active context into NATS headers. */
export function injectHeaders(headers: MsgHdrs): void {
  injectHeadersFrom(context.active(), headers);
}

/**
 * The context a message's headers hold, on top of the root context: a message without trace headers
 * starts a new trace rather than joining whatever happens to be active in the consumer loop.
 */
export function extractHeaders(headers: MsgHdrs | undefined): Context {
  if (!headers) return ROOT_CONTEXT;
  // One pass over the entries; a key in exact lower case wins over another spelling of it.
  let traceparent: string[] | undefined;
  let tracestate: string[] | undefined;
  let baggage: string[] | undefined;
  let exact = 0;
  for (const [key, values] of headers) {
    switch (key) {
      case "traceparent":
        traceparent = values;
        exact |= 1;
        continue;
      case "tracestate":
        tracestate = values;
        exact |= 2;
        continue;
      case "baggage":
        baggage = values;
        exact |= 4;
        continue;
    }
    if (key.length !== 7 && key.length !== 10 && key.length !== 11) continue;
    const lower = key.toLowerCase();
    if (lower === "traceparent" && !(exact & 1)) traceparent ??= values;
    else if (lower === "tracestate" && !(exact & 2)) tracestate ??= values;
    else if (lower === "baggage" && !(exact & 4)) baggage ??= values;
  }
  return extractFrom(
    ROOT_CONTEXT,
    traceparent?.[0],
    tracestate?.join(","),
    baggage?.join(","),
    headers,
    natsHeadersGetter,
  );
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
