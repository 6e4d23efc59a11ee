import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { Context as HonoContext, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { replaceContext } from "./context.ts";
import { createLogger, errorFields, type Logger } from "./logger.ts";
import { httpServerDuration, type MetricAttributes } from "./metrics.ts";
import { propagator } from "./propagation.ts";
import { isSecretKey, REDACTED } from "./redact.ts";
import { recordError, tracer } from "./spans.ts";

export interface HttpTelemetryOptions {
  /** Where "Request started"/"Request completed" go; `mikrom.http` by default. */
  logger?: Logger;
  /**
   * The client's address as the app decides it (its trusted proxies). Default: the socket's peer.
   * Never a forwarding header taken at face value: anyone could write any address into the logs.
   */
  clientAddress?: (c: HonoContext) => string | undefined;
}

/** Fetch `Headers` are case-insensitive already. */
const headersGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/** A client-supplied request id is echoed only if it is a sane token (it lands in logs and headers). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The trace a request continues (traceparent or B3 headers). Incoming baggage is dropped: the edge does
 * not let a client claim a `user.id` that every downstream service would then log as the caller.
 */
function parentContext(headers: Headers): Context {
  return propagation.deleteBaggage(propagator.extract(ROOT_CONTEXT, headers, headersGetter));
}

function socketPeer(c: HonoContext): string | undefined {
  // @hono/node-server puts the Node request in c.env.incoming.
  const env = c.env as { incoming?: IncomingMessage } | undefined;
  return env?.incoming?.socket?.remoteAddress;
}

function decodedKey(key: string): string {
  try {
    return decodeURIComponent(key.replaceAll("+", " "));
  } catch {
    return key;
  }
}

/**
 * The query string as the span records it: values of secret-looking parameters are redacted (an
 * EventSource cannot send headers, so the SSE route takes its bearer token as `?token=`); the rest
 * stays exactly as sent.
 */
function redactQuery(query: string): string {
  return query
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      if (eq === -1) return pair;
      const key = pair.slice(0, eq);
      return isSecretKey(decodedKey(key)) ? `${key}=${REDACTED}` : pair;
    })
    .join("&");
}

/** The route template that answered (`/api/v1/vms/:vm_id`), not a middleware's `*` nor a raw path. */
function routeTemplate(c: HonoContext): string | undefined {
  const routes = matchedRoutes(c);
  for (let i = Math.min(c.req.routeIndex, routes.length - 1); i >= 0; i--) {
    const route = routes[i];
    if (route && route.method !== "ALL" && !route.path.endsWith("*")) return route.path;
  }
  return undefined;
}

/**
 * Hono middleware, mounted first: a SERVER span per request (HTTP semantic conventions, named
 * `<METHOD> <route template>`), continuing the caller's trace when it sent one; `X-Request-ID` taken or
 * minted, put in the LogContext and returned; `X-Process-Time` (seconds) on the response; "Request
 * started" and "Request completed" log lines; the request duration histogram.
 */
export function httpTelemetry(opts: HttpTelemetryOptions = {}): MiddlewareHandler {
  const log = opts.logger ?? createLogger("mikrom.http");
  const clientIp = opts.clientAddress ?? socketPeer;
  return async (c, next) => {
    const started = performance.now();
    const method = c.req.method;
    const path = c.req.path;
    const url = new URL(c.req.url);
    const incomingId = c.req.header("x-request-id");
    const requestId = incomingId && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const ip = clientIp(c);
    const userAgent = c.req.header("user-agent");

    const attributes: Attributes = {
      "http.request.method": method,
      "url.path": path,
      "url.scheme": url.protocol.replace(":", ""),
      "server.address": url.hostname,
      "http.request.header.x-request-id": requestId,
    };
    if (url.port) attributes["server.port"] = Number(url.port);
    if (url.search) attributes["url.query"] = redactQuery(url.search.slice(1));
    if (ip) attributes["client.address"] = ip;
    if (userAgent) attributes["user_agent.original"] = userAgent;

    const parent = parentContext(c.req.raw.headers);
    const span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes }, parent);

    await context.with(trace.setSpan(parent, span), () =>
      replaceContext({ request_id: requestId }, async () => {
        log.info({ method, path, client_ip: ip, user_agent: userAgent }, "Request started");
        let thrown: unknown;
        try {
          await next();
        } catch (error) {
          // Without an onError handler Hono rethrows: still end the span and log before passing it on.
          thrown = error;
        }
        const status = thrown === undefined ? c.res.status : 500;
        const route = routeTemplate(c);
        const seconds = (performance.now() - started) / 1000;
        const durationMs = Math.round(seconds * 1e6) / 1e3;

        if (route) {
          span.updateName(`${method} ${route}`);
          span.setAttribute("http.route", route);
        }
        span.setAttribute("http.response.status_code", status);
        const error = thrown ?? c.error;
        if (error !== undefined) recordError(span, error);
        if (status >= 500) {
          span.setStatus({ code: SpanStatusCode.ERROR });
          if (error === undefined) span.setAttribute("error.type", String(status));
        }

        if (thrown === undefined) {
          c.header("X-Request-ID", requestId);
          c.header("X-Process-Time", seconds.toFixed(6));
        }
        const fields: Record<string, unknown> = {
          method,
          path,
          route,
          status_code: status,
          duration_ms: durationMs,
          client_ip: ip,
          user_agent: userAgent,
        };
        if (error !== undefined) Object.assign(fields, errorFields(error));
        // 503 is "a dependency is away, retry": expected in an outage, not a bug to page someone for.
        if (status >= 500 && status !== 503) log.error(fields, "Request completed");
        else if (status >= 400) log.warn(fields, "Request completed");
        else log.info(fields, "Request completed");

        const metricAttributes: MetricAttributes = {
          "http.request.method": method,
          "http.response.status_code": status,
        };
        if (route) metricAttributes["http.route"] = route;
        httpServerDuration.record(seconds, metricAttributes);
        span.end();
        if (thrown !== undefined) throw thrown;
      }),
    );
  };
}
