import type { Hono } from "hono";
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import type { Backend } from "../backend.ts";
import type { AppEnv } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import type { GatewayDb } from "../store/db.ts";

const Health = z.object({ status: z.literal("ok") });
const Readiness = z.object({
  status: z.enum(["ready", "not_ready"]),
  checks: z.object({ nats: z.enum(["ok", "failing"]), database: z.enum(["ok", "failing"]) }),
});

async function check(probe: () => Promise<unknown>): Promise<"ok" | "failing"> {
  try {
    return (await probe()) === false ? "failing" : "ok";
  } catch {
    return "failing";
  }
}

/** Liveness answers without touching anything (the Go client reads exactly `{"status":"ok"}`); readiness checks NATS and the database. */
export function healthRoutes(
  app: Hono<AppEnv>,
  deps: { db: Kysely<GatewayDb>; backend: Backend },
  docs: OpenApi,
): void {
  for (const path of ["/health", "/api/v1/health"]) {
    docs.add({
      method: "get",
      path,
      summary: "Liveness",
      tags: ["health"],
      auth: false,
      responses: { 200: { description: "Alive", schema: Health } },
    });
    app.get(path, (c) => c.json({ status: "ok" }));
  }
  for (const path of ["/ready", "/api/v1/health/ready"]) {
    docs.add({
      method: "get",
      path,
      summary: "Readiness: NATS and the database answer",
      tags: ["health"],
      auth: false,
      responses: {
        200: { description: "Ready", schema: Readiness },
        503: { description: "Not ready", schema: Readiness },
      },
    });
    app.get(path, async (c) => {
      const [nats, database] = await Promise.all([
        check(() => deps.backend.ready()),
        check(() => sql`SELECT 1`.execute(deps.db)),
      ]);
      const ready = nats === "ok" && database === "ok";
      return c.json({ status: ready ? "ready" : "not_ready", checks: { nats, database } }, ready ? 200 : 503);
    });
  }
}
