import { createRoute } from "@hono/zod-openapi";
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import type { Backend } from "../backend.ts";
import type { GatewayApp } from "../http/env.ts";
import { json } from "../http/route-parts.ts";
import type { GatewayDb } from "../store/db.ts";

const Health = z.object({ status: z.literal("ok") });
const Readiness = z.object({
  status: z.enum(["ready", "not_ready"]),
  checks: z.object({ nats: z.enum(["ok", "failing"]), database: z.enum(["ok", "failing"]) }),
});

const liveness = (path: string) =>
  createRoute({
    method: "get",
    path,
    summary: "Liveness",
    tags: ["health"],
    responses: { 200: json("Alive", Health) },
  });

const readiness = (path: string) =>
  createRoute({
    method: "get",
    path,
    summary: "Readiness: NATS and the database answer",
    tags: ["health"],
    responses: { 200: json("Ready", Readiness), 503: json("Not ready", Readiness) },
  });

async function check(probe: () => Promise<unknown>): Promise<"ok" | "failing"> {
  try {
    return (await probe()) === false ? "failing" : "ok";
  } catch {
    return "failing";
  }
}

/** Liveness answers without touching anything (the Go client reads exactly `{"status":"ok"}`); readiness checks NATS and the database. */
export function healthRoutes(app: GatewayApp, deps: { db: Kysely<GatewayDb>; backend: Backend }): void {
  for (const path of ["/health", "/api/v1/health"]) {
    app.openapi(liveness(path), (c) => c.json({ status: "ok" as const }, 200));
  }
  for (const path of ["/ready", "/api/v1/health/ready"]) {
    app.openapi(readiness(path), async (c) => {
      const [nats, database] = await Promise.all([
        check(() => deps.backend.ready()),
        check(() => sql`SELECT 1`.execute(deps.db)),
      ]);
      const checks = { nats, database };
      return nats === "ok" && database === "ok"
        ? c.json({ status: "ready" as const, checks }, 200)
        : c.json({ status: "not_ready" as const, checks }, 503);
    });
  }
}
