import { type Kysely, sql } from "kysely";
import type { GatewayDb } from "./db.ts";

/**
 * Refresh tokens are single use: each refresh marks its token used and issues a new one. A token
 * presented a second time means it leaked (or a client raced itself), so every live token of that
 * user is revoked and they log in again (`UserStore.endSessions`, which ends their access tokens too).
 * Only the token's id (`jti`) is kept, never the token: without JWT_SECRET no token can be rebuilt
 * from this table.
 */
export class RefreshTokenStore {
  readonly #db: Kysely<GatewayDb>;
  constructor(db: Kysely<GatewayDb>) {
    this.#db = db;
  }

  async record(jti: string, userId: number, expiresAt: Date): Promise<void> {
    await this.#db
      .insertInto("refresh_tokens")
      .values({ jti, user_id: userId, expires_at: expiresAt })
      .execute();
  }

  /**
   * Marks the token used: `consumed` for the one caller that found it unused, unrevoked and
   * unexpired; `reused` when it had been used and nothing has ended the user's sessions since (it
   * leaked, or a client raced itself); `refused` otherwise (revoked, expired, unknown), which is
   * only a 401: a stale copy presented after a logout must not end the user's new session.
   */
  async consume(jti: string, userId: number): Promise<"consumed" | "reused" | "refused"> {
    const row = await this.#db
      .updateTable("refresh_tokens")
      .set({ used_at: sql`now()` })
      .where("jti", "=", jti)
      .where("user_id", "=", userId)
      .where("used_at", "is", null)
      .where("revoked_at", "is", null)
      .where("expires_at", ">", sql<Date>`now()`)
      .returning("jti")
      .executeTakeFirst();
    if (row) return "consumed";
    const seen = await this.#db
      .selectFrom("refresh_tokens")
      .select(["used_at", "revoked_at"])
      .where("jti", "=", jti)
      .where("user_id", "=", userId)
      .executeTakeFirst();
    return seen?.used_at && !seen.revoked_at ? "reused" : "refused";
  }
}
