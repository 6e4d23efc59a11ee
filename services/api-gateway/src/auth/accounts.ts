import { randomBytes } from "node:crypto";
import { Text } from "@mikrom/contracts";
import { z } from "zod";
import type { Registration as RegistrationMode } from "../config.ts";
import { Problem } from "../http/problem.ts";
import type { InviteStore } from "../store/invites.ts";
import type { RefreshTokenStore } from "../store/refresh-tokens.ts";
import { DuplicateUser, type NewUser, type UserRow, UserStore } from "../store/users.ts";
import { unauthorized } from "./middleware.ts";
import { hashPassword, verifyPassword } from "./passwords.ts";
import { ACCESS_TTL_SECONDS, InvalidToken, type Tokens } from "./tokens.ts";

export const Password = Text.min(8).max(100);
/** A password as presented at login: any length it could have been set with, checked by its hash. */
export const LoginPassword = Text.min(1).max(100);
/** A username or an email, as presented at login. */
export const LoginName = Text.min(1).max(255);
export const FullName = Text.max(255);
export const Username = z
  .string()
  .min(3)
  .max(50)
  .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '.', '_' and '-' only");
export const Email = z.email().max(255);

/** A user as the API shows it: the earlier system's fields, plus `name` for the Go client. */
export const UserOut = z
  .object({
    id: z.int(),
    email: z.string(),
    username: z.string(),
    full_name: z.string().nullable(),
    name: z.string().describe("full_name, or the username when there is none (read by the Go client)"),
    is_active: z.boolean(),
    is_superuser: z.boolean(),
    quota: z
      .object({
        vms: z.int().nullable(),
        vcpus: z.int().nullable(),
        memory_mb: z.int().nullable(),
      })
      .describe("limits a superuser set for this user; null: the service's default"),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "User" });
export type UserOut = z.infer<typeof UserOut>;

export const TokenOut = z
  .object({
    access_token: z.string(),
    refresh_token: z.string(),
    token_type: z.literal("bearer"),
    expires_in: z.int().describe("seconds until the access token expires"),
    token: z.string().describe("the access token again (read by the Go client)"),
    user: UserOut,
  })
  .meta({ id: "Tokens" });
export type TokenOut = z.infer<typeof TokenOut>;

export function userOut(row: UserRow): UserOut {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    full_name: row.full_name,
    name: row.full_name ?? row.username,
    is_active: row.is_active,
    is_superuser: row.is_superuser,
    quota: { vms: row.max_vms, vcpus: row.max_vcpus, memory_mb: row.max_memory_mb },
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * The refusal of an email or a username someone already has, the same for both and naming neither:
 * its wording must not confirm that an address has an account. (The 409 itself still tells a taken
 * pair from a free one, as any sign-up that logs in at once must; docs/SECURITY.md says what is
 * left and what closes it.)
 */
export function identityTaken(): Problem {
  return new Problem(409, "Registration failed: choose another email or username");
}

export interface Registration {
  email: string;
  password: string;
  username?: string | undefined;
  fullName?: string | null | undefined;
}

/** Registration, login and token refresh: the rules, apart from HTTP. */
export class Accounts {
  readonly #users: UserStore;
  readonly #refresh: RefreshTokenStore;
  readonly #tokens: Tokens;
  readonly #invites: InviteStore;

  constructor(users: UserStore, refresh: RefreshTokenStore, tokens: Tokens, invites: InviteStore) {
    this.#users = users;
    this.#refresh = refresh;
    this.#tokens = tokens;
    this.#invites = invites;
  }

  /** An account made by the system or a superuser: no registration mode applies. */
  async register(input: Registration, superuser = false): Promise<UserRow> {
    return this.#create(this.#users, await this.#newUser(input, superuser));
  }

  /**
   * Self-service sign-up, as `mode` allows: `open` to anyone, `invite` with an unused, unexpired
   * invitation (spent only when the account is made), `closed` to no one. Refusals are 403s.
   */
  async signUp(
    input: Registration,
    mode: RegistrationMode,
    inviteToken: string | undefined,
  ): Promise<UserRow> {
    if (mode === "closed")
      throw new Problem(403, "Registration is closed: ask an administrator for an account");
    if (mode === "open") return this.register(input);
    if (inviteToken === undefined)
      throw new Problem(403, "Registration needs an invitation: ask an administrator for one (invite_token)");
    const user = await this.#newUser(input, false);
    const created = await this.#invites.redeem(inviteToken, (tx) => this.#create(new UserStore(tx), user));
    if (!created) throw new Problem(403, "This invitation is not valid: it is unknown, used or expired");
    return created;
  }

  /** Issues an invitation (superuser): the token is returned once and stored only as a hash. */
  invite(createdBy: number, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
    return this.#invites.issue(createdBy, ttlSeconds);
  }

  async #newUser(input: Registration, superuser: boolean): Promise<NewUser> {
    return {
      email: input.email,
      username: input.username ?? (await this.#deriveUsername(input.email)),
      fullName: input.fullName ?? null,
      hashedPassword: await hashPassword(input.password),
      isSuperuser: superuser,
    };
  }

  async #create(users: UserStore, user: NewUser): Promise<UserRow> {
    try {
      return await users.create(user);
    } catch (error) {
      if (error instanceof DuplicateUser) throw identityTaken();
      throw error;
    }
  }

  /** `login` is an email or a username; both failures read the same so accounts cannot be probed. */
  /**
   * What failed logins are counted against: the account a login names (by username or by email,
   * one count either way), or the login as typed when it names none. Both kinds of key behave the
   * same, so the throttle's answers tell nothing about which accounts exist.
   */
  async throttleKey(login: string): Promise<string> {
    const user = await this.#users.byLogin(login);
    return user ? `user:${user.id}` : `login:${login.trim().toLowerCase()}`;
  }

  async login(login: string, password: string): Promise<TokenOut> {
    const user = await this.#users.byLogin(login);
    const ok = await verifyPassword(user?.hashed_password, password);
    if (!user || !ok) throw unauthorized("Incorrect username or password");
    if (!user.is_active) throw new Problem(403, "Inactive user");
    return this.issue(user);
  }

  /** Single use: the presented token is consumed; presenting it again revokes the user's every token. */
  async refresh(refreshToken: string): Promise<TokenOut> {
    let claims: Awaited<ReturnType<Tokens["verify"]>>;
    try {
      claims = await this.#tokens.verify(refreshToken, "refresh");
    } catch (error) {
      if (error instanceof InvalidToken) throw unauthorized(error.message);
      throw error;
    }
    // The user as the token is consumed, read first: the one caller that consumes it gets its tokens
    // even when racing copies of it end every session meanwhile (they end the new tokens too, which
    // carry the generation read here).
    const user = await this.#users.byId(claims.userId);
    const consumed = await this.#refresh.consume(claims.jti, claims.userId);
    if (consumed !== "consumed") {
      // Reuse means the token leaked (or a client raced itself): every session of the user ends,
      // access tokens included, so whoever holds a copy is out at their next request.
      if (consumed === "reused") await this.#users.endSessions(claims.userId);
      throw unauthorized("Refresh token has already been used or revoked");
    }
    if (!user || claims.generation !== user.token_generation)
      throw unauthorized("Could not validate credentials");
    if (!user.is_active) throw new Problem(403, "Inactive user");
    return this.issue(user);
  }

  async issue(user: UserRow): Promise<TokenOut> {
    const [access, refresh] = await Promise.all([
      this.#tokens.issue(user.id, "access", { generation: user.token_generation }),
      this.#tokens.issue(user.id, "refresh", { generation: user.token_generation }),
    ]);
    await this.#refresh.record(refresh.jti, user.id, refresh.expiresAt);
    return {
      access_token: access.token,
      refresh_token: refresh.token,
      token_type: "bearer",
      expires_in: ACCESS_TTL_SECONDS,
      token: access.token,
      user: userOut(user),
    };
  }

  /** Logout: every session of the user ends (every device), refresh and access tokens alike. */
  logout(userId: number): Promise<void> {
    return this.#users.endSessions(userId);
  }

  /** The first superuser from the environment; an existing account of that email is left as it is. */
  async ensureAdmin(email: string, password: string): Promise<"created" | "exists"> {
    if (await this.#users.byEmail(email)) return "exists";
    try {
      await this.register({ email, password, username: "admin" }, true);
    } catch (error) {
      if (!(error instanceof Problem) || error.status !== 409) throw error;
      // "admin" is taken by someone else: derive one from the email instead.
      await this.register({ email, password }, true);
    }
    return "created";
  }

  /** From the email's local part; a short random suffix when taken. */
  async #deriveUsername(email: string): Promise<string> {
    const base =
      (email.split("@")[0] ?? "")
        .toLowerCase()
        .replace(/[^a-z0-9_.-]/g, "-")
        .slice(0, 40)
        .padEnd(3, "0") || "user";
    if (!(await this.#users.usernameTaken(base))) return base;
    for (let i = 0; i < 5; i++) {
      const candidate = `${base}-${randomBytes(3).toString("hex")}`;
      if (!(await this.#users.usernameTaken(candidate))) return candidate;
    }
    return `${base}-${randomBytes(6).toString("hex")}`;
  }
}
