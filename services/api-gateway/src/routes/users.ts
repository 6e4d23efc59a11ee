import type { Hono } from "hono";
import { z } from "zod";
import { Email, FullName, identityTaken, Password, Username, UserOut, userOut } from "../auth/accounts.ts";
import { requireSuperuser, requireUser } from "../auth/middleware.ts";
import { hashPassword } from "../auth/passwords.ts";
import type { AppEnv } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import { PageQuery, paged, pageOf } from "../http/paging.ts";
import { notFound, Problem } from "../http/problem.ts";
import { jsonBody, pathParam, queryParams } from "../http/validate.ts";
import type { RefreshTokenStore } from "../store/refresh-tokens.ts";
import { DuplicateUser, type UserStore } from "../store/users.ts";

const UserIdParam = z.coerce.number().int().positive().max(2_147_483_647);
export const UserUpdate = z.object({
  email: Email.optional(),
  username: Username.optional(),
  full_name: FullName.nullable().optional(),
  name: FullName.optional(),
  password: Password.optional(),
  is_active: z.boolean().optional(),
  is_superuser: z.boolean().optional(),
});

const USERS = ["users"];

/**
 * Superuser rules: a superuser lists, reads, changes and deletes anyone but never deletes themselves;
 * a user reads and changes only themselves, never their own `is_superuser` or `is_active`.
 */
export function userRoutes(
  app: Hono<AppEnv>,
  { users, refreshTokens }: { users: UserStore; refreshTokens: RefreshTokenStore },
  docs: OpenApi,
): void {
  docs.add({
    method: "get",
    path: "/api/v1/users",
    summary: "List users (superuser)",
    tags: USERS,
    query: PageQuery,
    responses: {
      200: { description: "A page of users", schema: pageOf(UserOut) },
      403: { description: "Not a superuser", problem: true },
    },
  });
  app.get("/api/v1/users", async (c) => {
    requireSuperuser(c);
    const q = queryParams(c, PageQuery);
    const { items, total } = await users.page(q.page, q.page_size);
    return c.json(paged(items.map(userOut), total, q.page, q.page_size));
  });

  docs.add({
    method: "get",
    path: "/api/v1/users/:user_id",
    summary: "Read a user (yourself, or anyone as a superuser)",
    tags: USERS,
    responses: {
      200: { description: "The user", schema: UserOut },
      403: { description: "Another user, and not a superuser", problem: true },
      404: { description: "No such user", problem: true },
    },
  });
  app.get("/api/v1/users/:user_id", async (c) => {
    const caller = requireUser(c);
    const id = pathParam(c, "user_id", UserIdParam);
    if (id !== caller.id && !caller.is_superuser)
      throw new Problem(403, "The user doesn't have enough privileges");
    const user = await users.byId(id);
    if (!user) throw notFound("User");
    return c.json(userOut(user));
  });

  docs.add({
    method: "put",
    path: "/api/v1/users/:user_id",
    summary: "Change a user (yourself, or anyone as a superuser)",
    tags: USERS,
    body: UserUpdate,
    responses: {
      200: { description: "The changed user", schema: UserOut },
      403: { description: "Not allowed", problem: true },
      404: { description: "No such user", problem: true },
      409: { description: "Email or username taken", problem: true },
    },
  });
  app.put("/api/v1/users/:user_id", async (c) => {
    const caller = requireUser(c);
    const id = pathParam(c, "user_id", UserIdParam);
    const body = await jsonBody(c, UserUpdate);
    const self = id === caller.id;
    if (!self && !caller.is_superuser) throw new Problem(403, "The user doesn't have enough privileges");
    if (self && body.is_superuser !== undefined && body.is_superuser !== caller.is_superuser) {
      throw new Problem(403, "Users cannot change their own superuser status");
    }
    if (self && body.is_active !== undefined && body.is_active !== caller.is_active) {
      throw new Problem(403, "Users cannot change their own active status");
    }
    try {
      const updated = await users.update(id, {
        email: body.email,
        username: body.username,
        fullName: body.full_name !== undefined ? body.full_name : body.name,
        hashedPassword: body.password === undefined ? undefined : await hashPassword(body.password),
        isActive: body.is_active,
        isSuperuser: body.is_superuser,
      });
      if (!updated) throw notFound("User");
      // A new password or a deactivation ends every session: the refresh tokens stop working.
      if (body.password !== undefined || body.is_active === false) await refreshTokens.revokeAll(id);
      return c.json(userOut(updated));
    } catch (error) {
      if (error instanceof DuplicateUser) throw identityTaken();
      throw error;
    }
  });

  docs.add({
    method: "delete",
    path: "/api/v1/users/:user_id",
    summary: "Delete a user (superuser; never yourself)",
    tags: USERS,
    responses: {
      204: { description: "Deleted" },
      403: { description: "Not a superuser, or deleting yourself", problem: true },
      404: { description: "No such user", problem: true },
    },
  });
  app.delete("/api/v1/users/:user_id", async (c) => {
    const caller = requireSuperuser(c);
    const id = pathParam(c, "user_id", UserIdParam);
    if (id === caller.id) throw new Problem(403, "Super users are not allowed to delete themselves");
    if (!(await users.delete(id))) throw notFound("User");
    return c.body(null, 204);
  });
}
