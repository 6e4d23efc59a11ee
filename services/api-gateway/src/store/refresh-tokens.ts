import { type Kysely, sql } from "kysely";
import type { GatewayDb } from "./db.ts";

/**
 * Refresh tokens are single use: each refresh marks its token used and issues a new one. A token
 * presented a second time means it leaked (or a client raced itself), so every live token of that
 * user is revoked and they log in again.
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

  /** Marks the token used; true only for the one caller that found it unused, unrevoked and unexpired. */
  async consume(jti: string, userId: number): Promise<boolean> {
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
    return row !== undefined;
  }

  async revokeAll(userId: number): Promise<void> {
    await this.#db
      .updateTable("refresh_tokens")
      .set({ revoked_at: sql`now()` })
      .where("user_id", "=", userId)
      .where("revoked_at", "is", null)
      .execute();
  }
}
