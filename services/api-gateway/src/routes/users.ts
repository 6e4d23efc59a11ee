import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import {
  Email,
  FullName,
  identityTaken,
  LoginPassword,
  Password,
  Username,
  UserOut,
  userOut,
} from "../auth/accounts.ts";
import { signedIn, superuserOnly } from "../auth/middleware.ts";
import { hashPassword, verifyPassword } from "../auth/passwords.ts";
import { deleteVmsOf, type UserVmDeps } from "../commands/user-vms.ts";
import type { GatewayApp } from "../http/env.ts";
import { PageQuery, paged, pageOf } from "../http/paging.ts";
import { notFound, Problem } from "../http/problem.ts";
import { BEARER, firstValues, inOrder, json, jsonRequest, problemJson } from "../http/route-parts.ts";
import { readJson } from "../http/validate.ts";
import { DuplicateUser, type UserRow, type UserStore } from "../store/users.ts";
import { actorOf } from "./vms/schemas.ts";

const UserPath = z.object({ user_id: z.coerce.number().int().positive().max(2_147_483_647) });
export const UserUpdate = z.object({
  email: Email.optional(),
  username: Username.optional(),
  full_name: FullName.nullable().optional(),
  name: FullName.optional(),
  password: Password.optional(),
  current_password: LoginPassword.optional().describe(
    "required to change your own password: the one you have now",
  ),
  is_active: z.boolean().optional(),
  is_superuser: z.boolean().optional(),
  quota: z
    .object({
      vms: z.int().min(0).max(100_000).nullable().optional(),
      vcpus: z.int().min(0).max(1_000_000).nullable().optional(),
      memory_mb: z.int().min(0).max(1_000_000_000).nullable().optional(),
    })
    .optional()
    .describe("superuser only: the user's limits (null: the service's default)"),
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
    403: problemJson("Not allowed, or the current password is wrong"),
    404: NO_SUCH_USER,
    409: problemJson("Email or username taken"),
  },
});

export const deleteUser = createRoute({
  method: "delete",
  path: "/api/v1/users/{user_id}",
  summary: "Delete a user and their VMs (superuser; never yourself)",
  tags: USERS,
  middleware: superuserOnly,
  security: BEARER,
  request: { params: UserPath },
  responses: {
    204: { description: "Deleted; the deletion of each of their VMs is started" },
    403: problemJson("Not a superuser, or deleting yourself"),
    404: NO_SUCH_USER,
    409: problemJson(
      "Their VMs being created are not recorded yet; retry (the user is deactivated meanwhile)",
    ),
    503: problemJson("vm-service unavailable; retry (the user is deactivated meanwhile)"),
    422: MALFORMED_ID,
  },
});

/**
 * Superuser rules: a superuser lists, reads, changes and deletes anyone but never deletes themselves;
 * a user reads and changes only themselves, never their own `is_superuser` or `is_active`.
 */
export function userRoutes(app: GatewayApp, { users, vms }: { users: UserStore; vms: UserVmDeps }): void {
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
    if (body.quota !== undefined && !caller.is_superuser) {
      throw new Problem(403, "Only a superuser changes quotas");
    }
    if (self && body.is_active !== undefined && body.is_active !== caller.is_active) {
      throw new Problem(403, "Users cannot change their own active status");
    }
    if (self && body.password !== undefined) await requireCurrentPassword(caller, body.current_password);
    try {
      // A new password or a deactivation ends every session: refresh and access tokens stop working.
      const updated = await users.update(id, {
        email: body.email,
        username: body.username,
        fullName: body.full_name !== undefined ? body.full_name : body.name,
        hashedPassword: body.password === undefined ? undefined : await hashPassword(body.password),
        isActive: body.is_active,
        isSuperuser: body.is_superuser,
        endSessions: body.password !== undefined || body.is_active === false,
        ...(body.quota && {
          quota: { vms: body.quota.vms, vcpus: body.quota.vcpus, memoryMb: body.quota.memory_mb },
        }),
      });
      if (!updated) throw notFound("User");
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
    // Resumable in three steps, each safe to run again (a retried DELETE after the gateway died):
    // 1. the user is deactivated and their sessions end, so they start nothing new meanwhile;
    // 2. DeleteVm for each of their VMs is recorded and sent (the ledger re-sends until answered);
    // 3. the row goes. Dying before 3 leaves an inactive user to delete again.
    const target = await users.update(id, { isActive: false, endSessions: true });
    if (!target) throw notFound("User");
    await deleteVmsOf(vms, target, actorOf(caller));
    await users.delete(id);
    return c.body(null, 204);
  });
}

/**
 * Changing one's own password takes the one in use: a stolen access token alone must not be enough
 * to take the account over. (A superuser resetting someone else's password is not asked for theirs.)
 */
async function requireCurrentPassword(caller: UserRow, current: string | undefined): Promise<void> {
  if (current === undefined) {
    throw new Problem(422, "current_password is required to change your password", {
      errors: [
        {
          field: "body.current_password",
          message: "required to change your own password",
          loc: ["body", "current_password"],
          type: "missing",
        },
      ],
    });
  }
  if (!(await verifyPassword(caller.hashed_password, current)))
    throw new Problem(403, "The current password is incorrect");
}
