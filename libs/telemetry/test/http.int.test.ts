import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { serve } from "@hono/node-server";
import {
  captureLogs,
  type LogLine,
  type ReceivedSpan,
  SpanKindOtlp,
  startTestTelemetry,
  type TestTelemetry,
} from "@mikrom/testkit";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createLogger,
  currentTraceId,
  getContext,
  httpTelemetry,
  setContext,
  setLogDestination,
} from "../src/index.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

let otel: TestTelemetry;
let logs: { lines: LogLine[]; write(line: string): void };

const handlerLog = createLogger("mikrom.test.handler");
const app = new Hono();
app.use(httpTelemetry());
app.get("/api/v1/vms/:vm_id", (c) => {
  setContext({ user_id: "u-42", vm_id: c.req.param("vm_id") });
  handlerLog.info("Reading VM");
  return c.json({ vm_id: c.req.param("vm_id"), trace_id: currentTraceId(), context: getContext() });
});
/** A handler known to take at least this long. */
const SLOW_MS = 80;
app.get("/slow", async (c) => {
  await delay(SLOW_MS);
  return c.text("done");
});
app.get("/boom", () => {
  throw new Error("database unreachable");
});
app.onError((error, c) =>
  error instanceof HTTPException ? error.getResponse() : c.json({ detail: error.message }, 500),
);

beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "http-test", traces: true, metrics: false });
});
afterAll(async () => {
  await otel.stop();
  setLogDestination(undefined);
});
beforeEach(() => {
  logs = captureLogs();
  setLogDestination(logs);
});

/** The one SERVER span of a request, found by the request id it carries. */
async function serverSpan(requestId: string): Promise<ReceivedSpan> {
  await otel.telemetry.flush();
  const spans = await otel.otlp.waitFor((all) =>
    all.some((s) => s.attributes["http.request.header.x-request-id"] === requestId),
  );
  const found = spans.filter((s) => s.attributes["http.request.header.x-request-id"] === requestId);
  expect(found).toHaveLength(1);
  expect(found[0]!.kind).toBe(SpanKindOtlp.SERVER);
  return found[0]!;
}

describe("the HTTP middleware", () => {
  it("continues the trace of an incoming traceparent in a server span named by the route template", async () => {
    const res = await app.request("/api/v1/vms/srv-0a0b0c0d?verbose=1", {
      headers: { traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, "x-request-id": "req-traceparent" },
    });
    expect(res.status).toBe(200);
    const span = await serverSpan("req-traceparent");
    expect(span).toMatchObject({ traceId: TRACE_ID, parentSpanId: SPAN_ID, name: "GET /api/v1/vms/:vm_id" });
    expect(span.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.route": "/api/v1/vms/:vm_id",
      "http.response.status_code": 200,
      "url.path": "/api/v1/vms/srv-0a0b0c0d",
      "url.query": "verbose=1",
    });
    expect(((await res.json()) as { trace_id: string }).trace_id).toBe(TRACE_ID);
  });

  it("records the query string with the values of secret-looking parameters redacted", async () => {
    const res = await app.request(
      "/api/v1/vms/srv-8?token=eyJhbGciOi.secret-jwt&verbose=1&api_key=k-123&access%5Ftoken=t-456&flag",
      { headers: { "x-request-id": "req-query-secret" } },
    );
    expect(res.status).toBe(200);
    const span = await serverSpan("req-query-secret");
    expect(span.attributes["url.query"]).toBe(
      "token=[REDACTED]&verbose=1&api_key=[REDACTED]&access%5Ftoken=[REDACTED]&flag",
    );
    expect(JSON.stringify(span)).not.toMatch(/secret-jwt|k-123|t-456/);
  });

  it("continues a trace given as a single B3 header or as B3 multi-headers", async () => {
    await app.request("/api/v1/vms/srv-1", {
      headers: { b3: `${TRACE_ID}-${SPAN_ID}-1`, "x-request-id": "req-b3" },
    });
    await app.request("/api/v1/vms/srv-2", {
      headers: {
        "X-B3-TraceId": TRACE_ID,
        "X-B3-SpanId": SPAN_ID,
        "X-B3-Sampled": "1",
        "x-request-id": "req-b3-multi",
      },
    });
    for (const id of ["req-b3", "req-b3-multi"]) {
      expect(await serverSpan(id)).toMatchObject({ traceId: TRACE_ID, parentSpanId: SPAN_ID });
    }
  });

  it("starts a new trace for a request without trace headers", async () => {
    await app.request("/api/v1/vms/srv-3", { headers: { "x-request-id": "req-root" } });
    const span = await serverSpan("req-root");
    expect(span.parentSpanId).toBe("");
    expect(span.traceId).not.toBe(TRACE_ID);
  });

  it("returns the X-Request-ID it was given, or a minted one, and X-Process-Time", async () => {
    const given = await app.request("/api/v1/vms/srv-4", { headers: { "x-request-id": "abc-123" } });
    expect(given.headers.get("x-request-id")).toBe("abc-123");
    expect(Number(given.headers.get("x-process-time"))).toBeGreaterThanOrEqual(0);
    const minted = await app.request("/api/v1/vms/srv-4");
    expect(minted.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await app.request("/api/v1/vms/srv-4", {
      headers: { "x-request-id": "<script> alert(1)" },
    });
    expect(hostile.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("logs Request started and Request completed with method, path, status, duration, client and trace", async () => {
    const res = await app.request("/api/v1/vms/srv-5", {
      headers: {
        "x-request-id": "req-logs",
        "user-agent": "mikrom-cli/1.0",
      },
    });
    const span = await serverSpan("req-logs");
    const [started, handler, completed] = logs.lines;
    expect(logs.lines).toHaveLength(3);
    const common = {
      request_id: "req-logs",
      trace_id: span.traceId,
      span_id: span.spanId,
      service: "http-test",
    };
    expect(started).toMatchObject({
      ...common,
      logger: "mikrom.http",
      message: "Request started",
      method: "GET",
      path: "/api/v1/vms/srv-5",
      user_agent: "mikrom-cli/1.0",
    });
    // The handler's setContext is visible to everything after it in the request, the closing line included.
    expect(handler).toMatchObject({ ...common, message: "Reading VM", user_id: "u-42", vm_id: "srv-5" });
    expect(completed).toMatchObject({
      ...common,
      level: "INFO",
      message: "Request completed",
      status_code: 200,
      route: "/api/v1/vms/:vm_id",
      user_id: "u-42",
    });
    expect(completed!.duration_ms).toBeGreaterThan(0);
    expect(res.status).toBe(200);
  });

  it("logs a request's duration as the time it took: at least the handler's delay, at most the caller's wall time", async () => {
    const started = performance.now();
    const res = await app.request("/slow", { headers: { "x-request-id": "req-slow" } });
    const wallMs = performance.now() - started;
    expect(await res.text()).toBe("done");
    const completed = logs.lines.find(
      (l) => l.request_id === "req-slow" && l.message === "Request completed",
    );
    const durationMs = completed?.duration_ms as number;
    // A timer may fire up to a millisecond early by the monotonic clock (libuv counts whole ms).
    expect(durationMs).toBeGreaterThanOrEqual(SLOW_MS - 1);
    expect(durationMs).toBeLessThanOrEqual(wallMs);
    // X-Process-Time (seconds) is the same measurement.
    expect(Number(res.headers.get("x-process-time")) * 1000).toBeCloseTo(durationMs, 0);
  });

  it("does not take a caller's user from incoming baggage", async () => {
    const res = await app.request("/api/v1/vms/srv-6", {
      headers: { baggage: "user.id=admin,user.name=root", "x-request-id": "req-baggage" },
    });
    const body = (await res.json()) as { context: Record<string, string> };
    expect(body.context).toEqual({ request_id: "req-baggage", user_id: "u-42", vm_id: "srv-6" });
    expect(logs.lines[0]!.user_name).toBeUndefined();
  });

  it("marks a failed request's span as an error with the exception, and logs it as an error", async () => {
    const res = await app.request("/boom", { headers: { "x-request-id": "req-boom" } });
    expect(res.status).toBe(500);
    const span = await serverSpan("req-boom");
    expect(span.status.code).toBe(2);
    expect(span.attributes["error.type"]).toBe("Error");
    expect(logs.lines.at(-1)).toMatchObject({
      level: "ERROR",
      message: "Request completed",
      status_code: 500,
      error: "database unreachable",
      error_type: "Error",
    });
  });

  it("names the span by method alone when no route matched", async () => {
    const res = await app.request("/nowhere", { method: "POST", headers: { "x-request-id": "req-404" } });
    expect(res.status).toBe(404);
    const span = await serverSpan("req-404");
    expect(span.name).toBe("POST");
    expect(span.attributes["http.route"]).toBeUndefined();
    expect(logs.lines.at(-1)).toMatchObject({ level: "WARN", status_code: 404 });
  });

  it("takes the client address from the socket behind a real server, never from a forwarding header", async () => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    try {
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/vms/srv-7`, {
        headers: { "x-request-id": "req-net", "x-forwarded-for": "203.0.113.9", "x-real-ip": "203.0.113.10" },
      });
      expect(res.status).toBe(200);
      expect(logs.lines[0]).toMatchObject({ message: "Request started", client_ip: "127.0.0.1" });
      expect((await serverSpan("req-net")).attributes["client.address"]).toBe("127.0.0.1");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
