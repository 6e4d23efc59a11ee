import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { Email, FullName, identityTaken, Password, Username, UserOut, userOut } from "../auth/accounts.ts";
import { signedIn, superuserOnly } from "../auth/middleware.ts";
import { hashPassword } from "../auth/passwords.ts";
import type { GatewayApp } from "../http/env.ts";
import { PageQuery, paged, pageOf } from "../http/paging.ts";
import { notFound, Problem } from "../http/problem.ts";
import { BEARER, firstValues, inOrder, json, jsonRequest, problemJson } from "../http/route-parts.ts";
import { readJson } from "../http/validate.ts";
import type { RefreshTokenStore } from "../store/refresh-tokens.ts";
import { DuplicateUser, type UserStore } from "../store/users.ts";

const UserPath = z.object({ user_id: z.coerce.number().int().positive().max(2_147_483_647) });
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
const NO_SUCH_USER = problemJson("No such user");
const MALFORMED_ID = problemJson("The user id is not a positive integer");

export const listUsers = createRoute({
  method: "get",
  path: "/api/v1/users",
  summary: "List users (superuser)",
  tags: USERS,
  middleware: superuserOnly,
  security: BEARER,
  request: { query: firstValues(PageQuery) },
  responses: {
    200: json("A page of users", pageOf(UserOut)),
    403: problemJson("Not a superuser"),
  },
});

export const readUser = createRoute({
  method: "get",
  path: "/api/v1/users/{user_id}",
  summary: "Read a user (yourself, or anyone as a superuser)",
  tags: USERS,
  middleware: signedIn,
  security: BEARER,
  request: { params: UserPath },
  responses: {
    200: json("The user", UserOut),
    403: problemJson("Another user, and not a superuser"),
    404: NO_SUCH_USER,
    422: MALFORMED_ID,
  },
});

export const updateUser = createRoute({
  method: "put",
  path: "/api/v1/users/{user_id}",
  summary: "Change a user (yourself, or anyone as a superuser)",
  tags: USERS,
  middleware: inOrder(signedIn, readJson),
  security: BEARER,
  request: { params: UserPath, body: jsonRequest(UserUpdate) },
  responses: {
    200: json("The changed user", UserOut),
    403: problemJson("Not allowed"),
    404: NO_SUCH_USER,
    409: problemJson("Email or username taken"),
  },
});

export const deleteUser = createRoute({
  method: "delete",
  path: "/api/v1/users/{user_id}",
  summary: "Delete a user (superuser; never yourself)",
  tags: USERS,
  middleware: superuserOnly,
  security: BEARER,
  request: { params: UserPath },
  responses: {
    204: { description: "Deleted" },
    403: problemJson("Not a superuser, or deleting yourself"),
    404: NO_SUCH_USER,
    422: MALFORMED_ID,
  },
});

/**
 * Superuser rules: a superuser lists, reads, changes and deletes anyone but never deletes themselves;
 * a user reads and changes only themselves, never their own `is_superuser` or `is_active`.
 */
export function userRoutes(
  app: GatewayApp,
  { users, refreshTokens }: { users: UserStore; refreshTokens: RefreshTokenStore },
): void {
  app.openapi(listUsers, async (c) => {
    const q = c.req.valid("query");
    const { items, total } = await users.page(q.page, q.page_size);
    return c.json(paged(items.map(userOut), total, q.page, q.page_size), 200);
  });

  app.openapi(readUser, async (c) => {
    const caller = c.get("user");
    const id = c.req.valid("param").user_id;
    if (id !== caller.id && !caller.is_superuser)
      throw new Problem(403, "The user doesn't have enough privileges");
    const user = await users.byId(id);
    if (!user) throw notFound("User");
    return c.json(userOut(user), 200);
  });

  app.openapi(updateUser, async (c) => {
    const caller = c.get("user");
    const id = c.req.valid("param").user_id;
    const body = c.req.valid("json");
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
      return c.json(userOut(updated), 200);
    } catch (error) {
      if (error instanceof DuplicateUser) throw identityTaken();
      throw error;
    }
  });

  app.openapi(deleteUser, async (c) => {
    const caller = c.get("user");
    const id = c.req.valid("param").user_id;
    if (id === caller.id) throw new Problem(403, "Super users are not allowed to delete themselves");
    if (!(await users.delete(id))) throw notFound("User");
    return c.body(null, 204);
  });
}
