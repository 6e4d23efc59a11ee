import { headers } from "@nats-io/transport-node";
import { context, propagation, trace } from "@opentelemetry/api";
import { parseTraceParent } from "@opentelemetry/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  extractHeaders,
  getContext,
  injectCarrier,
  injectHeaders,
  logContextFromBaggage,
  runInCarrier,
  setContext,
  withContext,
} from "../src/index.ts";
import { parseTraceparent } from "../src/propagation.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";
const parentContext = trace.setSpanContext(context.active(), {
  traceId: TRACE_ID,
  spanId: SPAN_ID,
  traceFlags: 1,
});

describe("propagation over NATS headers", () => {
  it("injects traceparent, b3 and baggage (with the LogContext) under lower-case keys", () => {
    const h = headers();
    context.with(parentContext, () =>
      withContext(
        { user_id: "u-7", user_name: "Ada Lovelace", request_id: "r-7", vm_id: "srv-0a0b0c0d" },
        () => injectHeaders(h),
      ),
    );
    expect(h.get("traceparent")).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);
    expect(h.get("b3")).toBe(`${TRACE_ID}-${SPAN_ID}-1`);
    const baggage = h.get("baggage");
    expect(baggage).toContain("user.id=u-7");
    expect(baggage).toContain("user.name=Ada%20Lovelace");
    expect(baggage).toContain("request.id=r-7");
    expect(baggage).toContain("vm.id=srv-0a0b0c0d");
    expect(h.keys().every((k) => k === k.toLowerCase())).toBe(true);
  });

  it("extracts the trace and the LogContext whatever the case of the header keys", () => {
    const h = headers();
    h.set("TraceParent", `00-${TRACE_ID}-${SPAN_ID}-01`);
    h.set("Baggage", "user.id=u-9,user.name=Grace%20Hopper,action=vm.create");
    const ctx = extractHeaders(h);
    expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
    expect(logContextFromBaggage(ctx)).toEqual({
      user_id: "u-9",
      user_name: "Grace Hopper",
      action: "vm.create",
    });
  });

  it("continues a trace from a B3 header alone", () => {
    const h = headers();
    h.set("b3", `${TRACE_ID}-${SPAN_ID}-1`);
    expect(trace.getSpanContext(extractHeaders(h))).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it("starts from the root context for a message without headers", () => {
    const ctx = context.with(parentContext, () => extractHeaders(undefined));
    expect(trace.getSpanContext(ctx)).toBeUndefined();
  });

  it("lets the current LogContext win over older baggage entries when injecting", () => {
    const old = propagation.setBaggage(
      parentContext,
      propagation.createBaggage({ "user.id": { value: "stale" } }),
    );
    const carrier: Record<string, string> = {};
    context.with(old, () => withContext({ user_id: "fresh" }, () => injectCarrier(carrier)));
    expect(carrier.baggage).toBe("user.id=fresh");
  });

  it("runs a function in the trace and LogContext a plain carrier holds, replacing the caller's", () => {
    const carrier: Record<string, string> = {};
    context.with(parentContext, () =>
      withContext({ user_id: "u-1", vm_id: "srv-11111111" }, () => injectCarrier(carrier)),
    );
    const seen = withContext({ request_id: "relay-loop" }, () =>
      runInCarrier(carrier, () => ({ span: trace.getActiveSpan()?.spanContext(), fields: getContext() })),
    );
    expect(seen.span).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
    expect(seen.fields).toEqual({ user_id: "u-1", vm_id: "srv-11111111" });
  });

  it("runs a function in the caller's context when there is no carrier", () => {
    const fields = withContext({ request_id: "r-1" }, () => runInCarrier(undefined, () => getContext()));
    expect(fields).toEqual({ request_id: "r-1" });
  });
});

describe("baggage entries other than the LogContext", () => {
  it("pass through inject and extract as OpenTelemetry baggage", () => {
    const withTenant = propagation.setBaggage(
      context.active(),
      propagation.createBaggage({ tenant: { value: "acme corp" } }),
    );
    const h = headers();
    context.with(withTenant, () => withContext({ user_id: "u-3" }, () => injectHeaders(h)));
    expect(h.get("baggage")).toBe("user.id=u-3,tenant=acme%20corp");
    const ctx = extractHeaders(h);
    expect(propagation.getBaggage(ctx)?.getEntry("tenant")?.value).toBe("acme corp");
    expect(logContextFromBaggage(ctx)).toEqual({ user_id: "u-3" });
  });
});

describe("the hand-written traceparent and b3 paths", () => {
  // Valid values, then each with one character replaced or a part zeroed, a version changed or a tail
  // added: the edges of the grammar, where a hand-written check would go wrong.
  const hexString = (n: number): fc.Arbitrary<string> =>
    fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
  const valid = fc
    .tuple(fc.constantFrom("00", "01", "cc", "fe"), hexString(32), hexString(16), hexString(2))
    .map(([v, t, s, f]) => `${v}-${t}-${s}-${f}`);
  const nearTraceparent = fc.oneof(
    valid,
    fc
      .tuple(valid, fc.nat(54), fc.constantFrom(..."0aAfFgG-x ~"))
      .map(([v, at, c]) => `${v.slice(0, at)}${c}${v.slice(at + 1)}`),
    valid.map((v) => `${v.slice(0, 3)}${"0".repeat(32)}${v.slice(35)}`),
    valid.map((v) => `${v.slice(0, 36)}${"0".repeat(16)}${v.slice(52)}`),
    fc.tuple(valid, fc.constantFrom("ff", "0G", "1")).map(([v, version]) => `${version}${v.slice(2)}`),
    fc.tuple(valid, fc.constantFrom("-extra", " ", "  ", "x", "-")).map(([v, tail]) => `${v}${tail}`),
    fc.string({ maxLength: 60 }),
  );

  it("accept exactly the traceparent values the SDK's parser accepts, with the same parts", () => {
    fc.assert(
      fc.property(nearTraceparent, (value) => {
        const sdk = parseTraceParent(value);
        const ours = parseTraceparent(value);
        if (sdk === null) expect(ours).toBeUndefined();
        else expect(ours).toEqual({ ...sdk, isRemote: true });
      }),
      { numRuns: 2000 },
    );
  });

  it("carry tracestate and the B3 debug flag from an extracted context to the next message", () => {
    const incoming = headers();
    incoming.set("b3", `${TRACE_ID}-${SPAN_ID}-d`);
    const outgoing = headers();
    context.with(extractHeaders(incoming), () => injectHeaders(outgoing));
    expect(outgoing.get("b3")).toBe(`${TRACE_ID}-${SPAN_ID}-d`);
    expect(outgoing.get("traceparent")).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);

    const withState = headers();
    withState.set("traceparent", `00-${TRACE_ID}-${SPAN_ID}-00`);
    withState.set("tracestate", "vendor=abc,other=1");
    const next = headers();
    context.with(extractHeaders(withState), () => injectHeaders(next));
    expect(next.get("tracestate")).toBe("vendor=abc,other=1");
    expect(next.get("traceparent")).toBe(`00-${TRACE_ID}-${SPAN_ID}-00`);
    expect(next.get("b3")).toBe(`${TRACE_ID}-${SPAN_ID}-0`);
  });

  it("falls back to B3 when the traceparent is not valid", () => {
    const h = headers();
    h.set("traceparent", "00-not-a-trace-01");
    h.set("b3", `${TRACE_ID}-${SPAN_ID}-1`);
    expect(trace.getSpanContext(extractHeaders(h))).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it("replaces trace headers already present instead of adding second values", () => {
    const h = headers();
    h.set("traceparent", `00-${"1".repeat(32)}-${"2".repeat(16)}-01`);
    context.with(parentContext, () => injectHeaders(h));
    expect(h.values("traceparent")).toEqual([`00-${TRACE_ID}-${SPAN_ID}-01`]);
  });

  it("injects the fields a scope has now, after setContext changed them", () => {
    const first = headers();
    const second = headers();
    withContext({ user_id: "u-1" }, () => {
      injectHeaders(first);
      setContext({ vm_id: "srv-22222222", user_id: "u-2" });
      injectHeaders(second);
    });
    expect(first.get("baggage")).toBe("user.id=u-1");
    expect(second.get("baggage")).toBe("user.id=u-2,vm.id=srv-22222222");
  });
});
