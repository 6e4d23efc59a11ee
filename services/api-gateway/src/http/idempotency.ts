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

/** Routes whose answers hold credentials: never stored, so a key there changes nothing. */
const NEVER_STORED = /^\/api\/v1\/auth\//;

/**
 * `Idempotency-Key` on POST: the first request with a key runs and its answer is stored; the same
 * key with the same method, path and body replays that answer (so a retried create makes one VM);
 * the same key with anything else is a 422. Keys are scoped by caller, so two users never collide.
 * The key also decides the ids the request mints (see commands/ids.ts), so even a retry that runs
 * again, after a crash or a 503, reaches what the first attempt did. A claim is a lease: a request
 * that died holding it (its process killed) is taken over by the next retry once `leaseMs` passes.
 */
export function idempotency(db: Kysely<GatewayDb>, options: { leaseMs: number }): MiddlewareHandler<AppEnv> {
  const leaseS = options.leaseMs / 1000;
  return async (c, next) => {
    const key = c.req.header(HEADER);
    if (c.req.method !== "POST" || key === undefined) return next();
    if (!KEY.test(key)) {
      throw keyProblem(
        "Idempotency-Key must be 1-255 visible ASCII characters",
        "1-255 visible ASCII characters",
        "string_pattern_mismatch",
      );
    }
    if (NEVER_STORED.test(c.req.path)) return next();
    c.set("idempotencyKey", key);
    const user = c.get("user");
    // Anonymous calls are scoped by address, so two clients never share a key.
    const scope = user ? `user:${user.id}` : `anonymous:${c.get("clientIp")}`;
    const body = await c.req.text();
    const requestHash = createHash("sha256").update(`${c.req.method} ${c.req.path}\n${body}`).digest("hex");
    const lease = sql<Date>`now() + make_interval(secs => ${leaseS})`;

    const claimed = await db
      .insertInto("idempotency_keys")
      .values({ scope, key, request_hash: requestHash, locked_until: lease })
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
        throw keyProblem(
          "Idempotency-Key was already used with a different request",
          "already used with a different request",
          "idempotency_key_reused",
        );
      }
      if (!first || first.status === null) {
        // Taken over only once the holder's lease has run out: it crashed, or it is very late.
        const taken = await db
          .updateTable("idempotency_keys")
          .set({ locked_until: lease })
          .where("scope", "=", scope)
          .where("key", "=", key)
          .where("status", "is", null)
          .where((eb) => eb.or([eb("locked_until", "is", null), eb("locked_until", "<=", sql<Date>`now()`)]))
          .returning("key")
          .executeTakeFirst();
        if (!taken) {
          throw new Problem(409, "A request with this Idempotency-Key is still in progress; retry later", {
            headers: { "Retry-After": "1" },
          });
        }
      } else {
        const headers = new Headers(first.headers ?? {});
        headers.set("Idempotent-Replayed", "true");
        const empty = first.status === 204 || first.status === 304;
        return new Response(empty ? null : first.body, { status: first.status, headers });
      }
    }

    try {
      await next();
    } catch (error) {
      await release(db, scope, key).catch(() => {});
      throw error;
    }
    const res = c.res;
    if (!storable(res.status) || c.error) {
      await release(db, scope, key).catch(() => {});
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
      .set({ status: res.status, headers: JSON.stringify(headers), body: text, locked_until: null })
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

/** A 422 that names the header the way a validation error names a field. */
function keyProblem(title: string, message: string, type: string): Problem {
  return new Problem(422, title, {
    errors: [{ field: "header.Idempotency-Key", message, loc: ["header", "Idempotency-Key"], type }],
  });
}
