import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import proxyAddr from "proxy-addr";
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
 * The client's address for the per-IP limits: the socket's peer, or, when that peer is a trusted
 * proxy, the nearest X-Forwarded-For hop that is not (proxy-addr walks the list from the right).
 * A client that reaches the gateway directly cannot choose its key: its X-Forwarded-For is ignored.
 */
export function clientAddress(trustedProxies: readonly string[]): (c: Context) => string {
  const trust = trustedProxies.length > 0 ? proxyAddr.compile([...trustedProxies]) : () => false;
  // Worked out once per request (the request log asks first, the limits after) and kept on it.
  return (c) => {
    const request = c as Context<AppEnv>;
    const known = request.get("clientIp");
    if (known !== undefined) return known;
    const ip = ipOf(c, trust);
    request.set("clientIp", ip);
    return ip;
  };
}

/** Sets `clientIp` for the limits, as `addressOf` (clientAddress) finds it. */
export function clientIp(addressOf: (c: Context) => string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("clientIp", addressOf(c));
    await next();
  };
}

function ipOf(c: Context, trust: (addr: string, i: number) => boolean): string {
  let peer: string | undefined;
  try {
    peer = getConnInfo(c).remote.address;
  } catch {
    // In-process requests (app.request in tests) have no socket.
    return "local";
  }
  if (!peer) return "unknown";
  // proxy-addr reads a Node request; these two fields are all it looks at.
  const forwardedFor = c.req.header("x-forwarded-for");
  const request = {
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
  } as unknown as Parameters<typeof proxyAddr>[0];
  return proxyAddr(request, trust);
}
