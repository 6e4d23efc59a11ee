import { traceTransaction } from "@mikrom/telemetry";
import { type Kysely, type Selectable, sql } from "kysely";
import { batched } from "./batched.ts";
import type { GatewayDb, UsersTable } from "./db.ts";

export type UserRow = Selectable<UsersTable>;

export interface NewUser {
  email: string;
  username: string;
  fullName: string | null;
  hashedPassword: string;
  isSuperuser?: boolean;
}

export interface UserChanges {
  email?: string;
  username?: string;
  fullName?: string | null;
  hashedPassword?: string;
  isActive?: boolean;
  isSuperuser?: boolean;
  /** A superuser's overrides of the user's limits; a null is "vm-service's default". */
  quota?: { vms?: number | null; vcpus?: number | null; memoryMb?: number | null };
  /** End every session of the user in the same transaction (see `endSessions`). */
  endSessions?: boolean;
}

/** A unique index said no: which one, so the caller can say "email taken" or "username taken". */
export class DuplicateUser extends Error {
  override readonly name = "DuplicateUser";
  readonly field: "email" | "username";
  constructor(field: "email" | "username") {
    super(`a user with this ${field} already exists`);
    this.field = field;
  }
}

function duplicateOf(error: unknown): DuplicateUser | undefined {
  const e = error as { code?: string; constraint?: string };
  if (e.code !== "23505") return undefined;
  return new DuplicateUser(e.constraint === "users_username_key" ? "username" : "email");
}

export class UserStore {
  readonly #db: Kysely<GatewayDb>;
  /** Every request of a signed-in caller reads its user: the reads of one moment are one statement. */
  readonly #byId: (id: number) => Promise<UserRow | undefined>;

  constructor(db: Kysely<GatewayDb>) {
    this.#db = db;
    this.#byId = batched(async (ids: readonly number[]) => {
      const rows = await db
        .selectFrom("users")
        .selectAll()
        .where("id", "=", sql<number>`any(${[...new Set(ids)]}::integer[])`)
        .execute();
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id));
    });
  }

  async create(user: NewUser): Promise<UserRow> {
    try {
      return await this.#db
        .insertInto("users")
        .values({
          email: user.email,
          username: user.username,
          full_name: user.fullName,
          hashed_password: user.hashedPassword,
          is_superuser: user.isSuperuser ?? false,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (error) {
      throw duplicateOf(error) ?? error;
    }
  }

  byId(id: number): Promise<UserRow | undefined> {
    return this.#byId(id);
  }

  byEmail(email: string): Promise<UserRow | undefined> {
    return this.#db
      .selectFrom("users")
      .selectAll()
      .where(sql<string>`lower(email)`, "=", email.toLowerCase())
      .executeTakeFirst();
  }

  /** Login accepts either: the form field is called `username` but old clients sent emails in it. */
  byLogin(login: string): Promise<UserRow | undefined> {
    const value = login.toLowerCase();
    return this.#db
      .selectFrom("users")
      .selectAll()
      .where((eb) => eb.or([eb(sql`lower(email)`, "=", value), eb(sql`lower(username)`, "=", value)]))
      .orderBy(sql`lower(email) = ${value}`, "desc")
      .executeTakeFirst();
  }

  async usernameTaken(username: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom("users")
      .select("id")
      .where(sql<string>`lower(username)`, "=", username.toLowerCase())
      .executeTakeFirst();
    return row !== undefined;
  }

  async page(page: number, pageSize: number): Promise<{ items: UserRow[]; total: number }> {
    const [items, count] = await Promise.all([
      this.#db
        .selectFrom("users")
        .selectAll()
        .orderBy("id")
        .limit(pageSize)
        .offset((page - 1) * pageSize)
        .execute(),
      this.#db
        .selectFrom("users")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  async update(id: number, changes: UserChanges): Promise<UserRow | undefined> {
    if (!changes.endSessions) return updateUser(this.#db, id, changes);
    // The change (a new password, a deactivation) and the end of the old sessions land together.
    return traceTransaction(() =>
      this.#db.transaction().execute(async (tx) => {
        const row = await updateUser(tx, id, changes);
        if (row) await revokeRefreshTokens(tx, id);
        return row;
      }),
    );
  }

  /**
   * Ends every session of the user at once: their refresh tokens are revoked and their token
   * generation raised, so every access token issued before is refused from the next request on.
   */
  async endSessions(id: number): Promise<void> {
    await traceTransaction(() =>
      this.#db.transaction().execute(async (tx) => {
        await tx
          .updateTable("users")
          .set({ token_generation: sql`token_generation + 1` })
          .where("id", "=", id)
          .execute();
        await revokeRefreshTokens(tx, id);
      }),
    );
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.#db.deleteFrom("users").where("id", "=", id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}

function revokeRefreshTokens(db: Kysely<GatewayDb>, userId: number): Promise<unknown> {
  return db
    .updateTable("refresh_tokens")
    .set({ revoked_at: sql`now()` })
    .where("user_id", "=", userId)
    .where("revoked_at", "is", null)
    .execute();
}

async function updateUser(
  db: Kysely<GatewayDb>,
  id: number,
  changes: UserChanges,
): Promise<UserRow | undefined> {
  try {
    return await db
      .updateTable("users")
      .set({
        ...(changes.email !== undefined && { email: changes.email }),
        ...(changes.username !== undefined && { username: changes.username }),
        ...(changes.fullName !== undefined && { full_name: changes.fullName }),
        ...(changes.hashedPassword !== undefined && { hashed_password: changes.hashedPassword }),
        ...(changes.isActive !== undefined && { is_active: changes.isActive }),
        ...(changes.isSuperuser !== undefined && { is_superuser: changes.isSuperuser }),
        ...(changes.endSessions && { token_generation: sql`token_generation + 1` }),
        ...(changes.quota?.vms !== undefined && { max_vms: changes.quota.vms }),
        ...(changes.quota?.vcpus !== undefined && { max_vcpus: changes.quota.vcpus }),
        ...(changes.quota?.memoryMb !== undefined && { max_memory_mb: changes.quota.memoryMb }),
        updated_at: sql`now()`,
      })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
  } catch (error) {
    throw duplicateOf(error) ?? error;
  }
}
