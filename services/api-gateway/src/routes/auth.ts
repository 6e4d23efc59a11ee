import type { Hono } from "hono";
import { z } from "zod";
import {
  type Accounts,
  Email,
  FullName,
  LoginName,
  LoginPassword,
  Password,
  TokenOut,
  Username,
  UserOut,
  userOut,
} from "../auth/accounts.ts";
import { requireUser } from "../auth/middleware.ts";
import type { AppEnv } from "../http/env.ts";
import type { OpenApi } from "../http/openapi.ts";
import { formBody, jsonBody, parseWith } from "../http/validate.ts";

export const RegisterBody = z.object({
  email: Email,
  password: Password,
  username: Username.optional().describe("derived from the email when absent"),
  full_name: FullName.nullable().optional(),
  name: FullName.optional().describe("the Go client's spelling of full_name"),
});
const RegisterOut = UserOut.extend({ user: UserOut }).extend(TokenOut.omit({ user: true }).shape);

const LoginForm = z.object({
  username: LoginName.describe("username or email"),
  password: LoginPassword,
});
const LoginJson = z
  .object({
    username: LoginName.optional(),
    email: LoginName.optional(),
    password: LoginPassword,
  })
  .refine((b) => b.username !== undefined || b.email !== undefined, {
    message: "username or email is required",
    path: ["username"],
  });
const RefreshBody = z.object({ refresh_token: z.string().min(1).max(4096) });

const AUTH = ["auth"];

export function authRoutes(app: Hono<AppEnv>, accounts: Accounts, docs: OpenApi): void {
  docs.add({
    method: "post",
    path: "/api/v1/auth/register",
    summary: "Create an account",
    tags: AUTH,
    auth: false,
    body: RegisterBody,
    responses: {
      201: { description: "Created", schema: RegisterOut },
      409: { description: "Email or username taken", problem: true },
    },
  });
  app.post("/api/v1/auth/register", async (c) => {
    const body = await jsonBody(c, RegisterBody);
    const user = await accounts.register({
      email: body.email,
      password: body.password,
      username: body.username,
      fullName: body.full_name ?? body.name ?? null,
    });
    const tokens = await accounts.issue(user);
    const { user: out, ...tokenFields } = tokens;
    return c.json({ ...out, user: out, ...tokenFields }, 201);
  });

  docs.add({
    method: "post",
    path: "/api/v1/auth/login",
    summary: "Log in with a form (username or email + password) or a JSON body {email, password}",
    tags: AUTH,
    auth: false,
    form: LoginForm,
    responses: {
      200: { description: "Tokens", schema: TokenOut },
      401: { description: "Wrong credentials", problem: true },
    },
  });
  app.post("/api/v1/auth/login", async (c) => {
    // The Go client posts JSON here; the earlier web clients post a form. Both are answered.
    if (c.req.header("content-type")?.toLowerCase().includes("json")) {
      const body = await jsonBody(c, LoginJson);
      return c.json(await accounts.login((body.email ?? body.username)!, body.password));
    }
    const body = parseWith("body", LoginForm, await formBody(c));
    return c.json(await accounts.login(body.username, body.password));
  });

  docs.add({
    method: "post",
    path: "/api/v1/auth/login/json",
    summary: "Log in with a JSON body",
    tags: AUTH,
    auth: false,
    body: LoginJson,
    responses: {
      200: { description: "Tokens", schema: TokenOut },
      401: { description: "Wrong credentials", problem: true },
    },
  });
  app.post("/api/v1/auth/login/json", async (c) => {
    const body = await jsonBody(c, LoginJson);
    return c.json(await accounts.login((body.username ?? body.email)!, body.password));
  });

  docs.add({
    method: "post",
    path: "/api/v1/auth/refresh",
    summary: "Trade a refresh token for a new pair; the presented one is used up",
    tags: AUTH,
    auth: false,
    body: RefreshBody,
    responses: { 200: { description: "Tokens", schema: TokenOut } },
  });
  app.post("/api/v1/auth/refresh", async (c) => {
    const body = await jsonBody(c, RefreshBody);
    return c.json(await accounts.refresh(body.refresh_token));
  });

  for (const path of ["/api/v1/auth/me", "/api/v1/auth/profile"]) {
    docs.add({
      method: "get",
      path,
      summary: "The caller's account",
      tags: AUTH,
      responses: { 200: { description: "The user", schema: UserOut } },
    });
    app.get(path, (c) => c.json(userOut(requireUser(c))));
  }
}
