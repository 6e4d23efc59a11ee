import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { type Kysely, sql } from "kysely";
import type { GatewayDb } from "../store/db.ts";
import type { AppEnv } from "./env.ts";
import { Problem } from "./problem.ts";

const HEADER = "idempotency-key";
const KEY = /^[\x21-\x7e]{1,255}$/;
/** Headers of the first answer that a replay repeats. */
const KEPT_HEADERS = ["content-type", "location"];

/** Answers worth replaying: the request was handled. Auth, throttling and server failures are retried for real. */
function storable(status: number): boolean {
  return status < 500 && status !== 401 && status !== 403 && status !== 408 && status !== 429;
}

/**
 * `Idempotency-Key` on POST: the first request with a key runs and its answer is stored; the same
 * key with the same method, path and body replays that answer (so a retried create makes one VM);
 * the same key with anything else is a 422. Keys are scoped by caller, so two users never collide.
 */
export function idempotency(db: Kysely<GatewayDb>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header(HEADER);
    if (c.req.method !== "POST" || key === undefined) return next();
    if (!KEY.test(key)) {
      throw new Problem(422, "Idempotency-Key must be 1-255 visible ASCII characters", {
        errors: [
          {
            field: "header.Idempotency-Key",
            message: "1-255 visible ASCII characters",
            loc: ["header", "Idempotency-Key"],
            type: "string_pattern_mismatch",
          },
        ],
      });
    }
    const user = c.get("user");
    // Anonymous calls (register, login) are scoped by address, so two clients never share a key.
    const scope = user ? `user:${user.id}` : `anonymous:${c.get("clientIp")}`;
    const body = await c.req.text();
    const requestHash = createHash("sha256").update(`${c.req.method} ${c.req.path}\n${body}`).digest("hex");

    const claimed = await db
      .insertInto("idempotency_keys")
      .values({ scope, key, request_hash: requestHash })
      .onConflict((oc) => oc.columns(["scope", "key"]).doNothing())
      .returning("key")
      .executeTakeFirst();

    if (!claimed) {
      const first = await db
        .selectFrom("idempotency_keys")
        .selectAll()
        .where("scope", "=", scope)
        .where("key", "=", key)
        .executeTakeFirst();
      if (first && first.request_hash !== requestHash) {
        throw new Problem(422, "Idempotency-Key was already used with a different request", {
          errors: [
            {
              field: "header.Idempotency-Key",
              message: "already used with a different request",
              loc: ["header", "Idempotency-Key"],
              type: "idempotency_key_reused",
            },
          ],
        });
      }
      if (!first || first.status === null) {
        throw new Problem(409, "A request with this Idempotency-Key is still in progress; retry later", {
          headers: { "Retry-After": "1" },
        });
      }
      const headers = new Headers(first.headers ?? {});
      headers.set("Idempotent-Replayed", "true");
      const empty = first.status === 204 || first.status === 304;
      return new Response(empty ? null : first.body, { status: first.status, headers });
    }

    try {
      await next();
    } catch (error) {
      await release(db, scope, key);
      throw error;
    }
    const res = c.res;
    if (!storable(res.status) || c.error) {
      await release(db, scope, key);
      return;
    }
    const text = await res.clone().text();
    const headers: Record<string, string> = {};
    for (const name of KEPT_HEADERS) {
      const value = res.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    await db
      .updateTable("idempotency_keys")
      .set({ status: res.status, headers: JSON.stringify(headers), body: text })
      .where("scope", "=", scope)
      .where("key", "=", key)
      .execute();
  };
}

function release(db: Kysely<GatewayDb>, scope: string, key: string): Promise<unknown> {
  return db.deleteFrom("idempotency_keys").where("scope", "=", scope).where("key", "=", key).execute();
}

/** Keys older than a day are forgotten (the same window Stripe keeps). */
export function expireIdempotencyKeys(db: Kysely<GatewayDb>): Promise<unknown> {
  return db
    .deleteFrom("idempotency_keys")
    .where("created_at", "<", sql<Date>`now() - interval '24 hours'`)
    .execute();
}
