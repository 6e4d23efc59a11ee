import { CompiledQuery, type Kysely, sql } from "kysely";
import { type IRateLimiterStoreOptions, RateLimiterMemory, RateLimiterPostgres } from "rate-limiter-flexible";
import { batched } from "../store/batched.ts";
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

/** What rate-limiter-flexible's PostgreSQL store reads from an upsert: the key's points and expiry (epoch ms). */
interface StoreResult {
  readonly rows: readonly { points: number; expire: string | number | null }[];
}

/** Points added to one key: the library's `_upsert` without a forced expiry. */
interface Addition {
  readonly key: string;
  readonly points: number;
  readonly msDuration: number;
}

type Upsert = (
  key: string,
  points: number,
  msDuration: number,
  forceExpire?: boolean,
) => Promise<StoreResult>;
const libraryUpsert = (RateLimiterPostgres.prototype as unknown as { _upsert: Upsert })._upsert;

/**
 * The additions of one moment as one upsert (the library's, for many keys): every request counts
 * against its caller, so under load one statement stands for many. Each call is answered with the
 * points its key had once it was added, as if the calls had run one after another in the order they
 * were made, so the limit holds exactly as before, across replicas too.
 */
async function addAll(db: Kysely<GatewayDb>, additions: readonly Addition[]): Promise<StoreResult[]> {
  const now = Date.now();
  // A key may appear once in an upsert: its additions are summed.
  const sums = new Map<string, { points: number; expire: number | null }>();
  for (const a of additions) {
    const sum = sums.get(a.key);
    if (sum) sum.points += a.points;
    else sums.set(a.key, { points: a.points, expire: a.msDuration > 0 ? now + a.msDuration : null });
  }
  const { rows } = await sql<{ key: string; points: number; expire: string | null }>`
    INSERT INTO rate_limits (key, points, expire)
    SELECT * FROM unnest(${[...sums.keys()]}::text[], ${[...sums.values()].map((s) => s.points)}::integer[],
                         ${[...sums.values()].map((s) => s.expire)}::bigint[])
    ON CONFLICT (key) DO UPDATE SET
      points = CASE WHEN rate_limits.expire <= ${now} THEN excluded.points
                    ELSE rate_limits.points + excluded.points END,
      expire = CASE WHEN rate_limits.expire <= ${now} THEN excluded.expire ELSE rate_limits.expire END
    RETURNING key, points, expire`.execute(db);
  const after = new Map(rows.map((row) => [row.key, row]));
  const added = new Map<string, number>();
  return additions.map((a) => {
    const row = after.get(a.key);
    if (!row) throw new Error(`no count returned for ${a.key}`);
    const sofar = (added.get(a.key) ?? 0) + a.points;
    added.set(a.key, sofar);
    return { rows: [{ points: row.points - (sums.get(a.key)?.points ?? 0) + sofar, expire: row.expire }] };
  });
}

/**
 * RateLimiterPostgres whose additions go through `addAll`; a forced expiry (`block`, `set`) is the
 * library's own statement. Everything else (in-memory blocks, the insurance limiter, the answers)
 * is the library's.
 */
class BatchedPostgresLimiter extends RateLimiterPostgres {
  readonly #add: (addition: Addition) => Promise<StoreResult>;

  constructor(options: IRateLimiterStoreOptions, db: Kysely<GatewayDb>) {
    super(options);
    this.#add = batched((additions: readonly Addition[]) => addAll(db, additions));
  }

  /** The library's store hook: consume, penalty and reward add points to a key through it. */
  _upsert(key: string, points: number, msDuration: number, forceExpire = false): Promise<StoreResult> {
    if (forceExpire) return libraryUpsert.call(this, key, points, msDuration, true);
    return this.#add({ key, points, msDuration });
  }
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
  return new BatchedPostgresLimiter(
    {
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
    },
    db,
  );
}
