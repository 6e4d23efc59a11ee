import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "./env.ts";

/** The API serves JSON only: nothing may be framed, sniffed, or load sub-resources. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

export function securityHeaders(): MiddlewareHandler<AppEnv> {
  const base = secureHeaders({
    crossOriginResourcePolicy: "same-site",
    strictTransportSecurity: "max-age=31536000; includeSubDomains",
  });
  return async (c, next) => {
    await base(c, async () => {
      await next();
    });
    if (!c.res.headers.has("Content-Security-Policy")) c.res.headers.set("Content-Security-Policy", API_CSP);
  };
}

export function corsPolicy(origins: readonly string[]): MiddlewareHandler<AppEnv> {
  const any = origins.includes("*");
  return cors({
    origin: any ? "*" : [...origins],
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID"],
    exposeHeaders: [
      "Location",
      "Retry-After",
      "X-Request-ID",
      "X-Process-Time",
      "Idempotent-Replayed",
      "RateLimit-Limit",
      "RateLimit-Remaining",
    ],
    maxAge: 600,
    // Tokens travel in the Authorization header, never cookies, so credentials are not needed.
    credentials: false,
  });
}

/**
 * The client's address for the per-IP limit: the socket's peer, or the first X-Forwarded-For hop
 * when configured to trust a proxy in front.
 */
export function clientIp(trustProxy: boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("clientIp", ipOf(c, trustProxy));
    await next();
  };
}

function ipOf(c: Context<AppEnv>, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // In-process requests (app.request in tests) have no socket.
    return "local";
  }
}
