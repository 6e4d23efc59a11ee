import { CompiledQuery, type Kysely } from "kysely";
import { RateLimiterMemory, RateLimiterPostgres } from "rate-limiter-flexible";
import type { GatewayDb } from "../store/db.ts";

/** The table every limiter of the gateway counts in (migration 003); keys carry the limiter's prefix. */
export const LIMITS_TABLE = "rate_limits";

/**
 * rate-limiter-flexible's PostgreSQL store speaks to a `pg` client (`query({ text, values })`); this
 * one runs those statements through the gateway's kysely, so the limits share its pool, its bounded
 * waits and its handling of a restarting server instead of opening a pool of their own.
 */
function storeClient(db: Kysely<GatewayDb>): {
  query(q: { text: string; values?: unknown[] }): Promise<{ rows: unknown[]; rowCount: number }>;
} {
  return {
    async query(q) {
      const result = await db.executeQuery(CompiledQuery.raw(q.text, q.values ?? []));
      return { rows: result.rows, rowCount: result.rows.length || Number(result.numAffectedRows ?? 0) };
    },
  };
}

export interface LimiterSpec {
  /** Names the limiter's keys in the shared table: `login-account:ana@example.com`. */
  readonly prefix: string;
  readonly points: number;
  readonly durationSeconds: number;
  /** Refuse a key over its limit from memory until its window ends (not for counters that are reset). */
  readonly blockInMemory?: boolean;
}

/**
 * A counter every gateway replica shares, kept in the gateway's database. While the database does
 * not answer, the library falls back to an in-memory limiter with the same numbers (its insurance
 * pattern): each replica then enforces the limit on its own instead of refusing every request.
 * With `blockInMemory` a key over its limit is refused from memory until its window ends, so a
 * flood from one client does not become a flood of writes.
 */
export function sharedLimiter(db: Kysely<GatewayDb>, spec: LimiterSpec): RateLimiterPostgres {
  return new RateLimiterPostgres({
    storeClient: storeClient(db),
    storeType: "pool",
    tableName: LIMITS_TABLE,
    tableCreated: true,
    keyPrefix: spec.prefix,
    points: spec.points,
    duration: spec.durationSeconds,
    ...(spec.blockInMemory && { inMemoryBlockOnConsumed: spec.points + 1 }),
    insuranceLimiter: new RateLimiterMemory({
      keyPrefix: spec.prefix,
      points: spec.points,
      duration: spec.durationSeconds,
    }),
  });
}
