import type { Hono } from "hono";
import type { AppEnv } from "../../http/env.ts";
import { type ConsoleDeps, LoginRequired } from "./context.ts";

/**
 * The API's event stream (`GET /api/v1/events/vms`: only the caller's VMs, resumable), passed through
 * for the browser, whose token is in an HttpOnly cookie a script cannot put in the URL.
 */
export function eventStream(app: Hono<AppEnv>, deps: ConsoleDeps): void {
  app.get("/console/events", async (c) => {
    const token = await deps.sessions.token(c);
    if (!token) throw new LoginRequired();
    const res = await deps.api.request(c, "GET", "/api/v1/events/vms", {
      token,
      lastEventId: c.req.header("last-event-id"),
      signal: c.req.raw.signal,
    });
    if (!res.ok || !res.body) return res;
    return new Response(res.body, {
      status: 200,
      headers: {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
      },
    });
  });
}
