import { createHash, randomBytes } from "node:crypto";
import { traceTransaction } from "@mikrom/telemetry";
import { type Kysely, sql } from "kysely";
import type { GatewayDb } from "./db.ts";

/** The hash kept of an invitation token: 256 random bits need no slow hash, only a one-way one. */
const hashOf = (token: string): string => createHash("sha256").update(token).digest("hex");

/**
 * Invitations to register, issued by a superuser: the token is shown once and only its hash is
 * stored; redeeming one marks it used in the transaction that creates the account, so a refused
 * registration (a taken email) does not spend it.
 */
export class InviteStore {
  readonly #db: Kysely<GatewayDb>;
  constructor(db: Kysely<GatewayDb>) {
    this.#db = db;
  }

  async issue(createdBy: number, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
    const token = `inv_${randomBytes(32).toString("base64url")}`;
    const row = await this.#db
      .insertInto("invites")
      .values({
        token_hash: hashOf(token),
        created_by: createdBy,
        expires_at: sql<Date>`now() + make_interval(secs => ${ttlSeconds})`,
      })
      .returning("expires_at")
      .executeTakeFirstOrThrow();
    return { token, expiresAt: row.expires_at };
  }

  /**
   * Runs `create` in a transaction that first spends the invitation; false (nothing run) when the
   * token is unknown, used or expired. `create` failing leaves the invitation unspent.
   */
  async redeem<T>(
    token: string,
    create: (tx: Kysely<GatewayDb>) => Promise<T & { id: number }>,
  ): Promise<(T & { id: number }) | undefined> {
    return traceTransaction(() =>
      this.#db.transaction().execute(async (tx) => {
        const spent = await tx
          .updateTable("invites")
          .set({ used_at: sql`now()` })
          .where("token_hash", "=", hashOf(token))
          .where("used_at", "is", null)
          .where("expires_at", ">", sql<Date>`now()`)
          .returning("token_hash")
          .executeTakeFirst();
        if (!spent) return undefined;
        const created = await create(tx);
        await tx
          .updateTable("invites")
          .set({ used_by: created.id })
          .where("token_hash", "=", spent.token_hash)
          .execute();
        return created;
      }),
    );
  }
}
