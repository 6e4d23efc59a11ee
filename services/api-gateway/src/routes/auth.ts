import { createRoute } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
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
import { signedIn, superuserOnly } from "../auth/middleware.ts";
import type { Registration } from "../config.ts";
import type { AppEnv, GatewayApp } from "../http/env.ts";
import { BEARER, inOrder, json, jsonRequest, problemJson } from "../http/route-parts.ts";
import { readForm, readJson } from "../http/validate.ts";
import type { LoginThrottle } from "../limits/login-throttle.ts";

export const RegisterBody = z.object({
  email: Email,
  password: Password,
  username: Username.optional().describe("derived from the email when absent"),
  full_name: FullName.nullable().optional(),
  name: FullName.optional().describe("the Go client's spelling of full_name"),
  invite_token: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe("an invitation from a superuser: required when MIKROM_REGISTRATION=invite"),
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
const WRONG_CREDENTIALS = problemJson("Wrong credentials");
const TOO_MANY_FAILURES = problemJson(
  "Too many failed logins for this account or from this address; Retry-After says when to try again",
);

/** The Go client posts JSON to the login form's route; the earlier web clients post a form. */
const isJson = (contentType: string | undefined): boolean =>
  contentType?.toLowerCase().includes("json") ?? false;
const readLogin: MiddlewareHandler<AppEnv> = (c, next) =>
  isJson(c.req.header("content-type")) ? readJson(c, next) : readForm(c, next);

export const register = createRoute({
  method: "post",
  path: "/api/v1/auth/register",
  summary: "Create an account",
  tags: AUTH,
  middleware: readJson,
  request: { body: jsonRequest(RegisterBody) },
  responses: {
    201: json("Created", RegisterOut),
    403: problemJson("Registration is closed, or needs a valid invitation"),
    409: problemJson("Email or username taken"),
  },
});

export const login = createRoute({
  method: "post",
  path: "/api/v1/auth/login",
  summary: "Log in with a form (username or email + password) or a JSON body {email, password}",
  tags: AUTH,
  middleware: readLogin,
  request: {
    // Not `required`: each media type is validated only when it is the one sent.
    body: {
      content: {
        "application/x-www-form-urlencoded": { schema: LoginForm },
        "application/json": { schema: LoginJson },
      },
    },
  },
  responses: { 200: json("Tokens", TokenOut), 401: WRONG_CREDENTIALS, 429: TOO_MANY_FAILURES },
});

export const loginJson = createRoute({
  method: "post",
  path: "/api/v1/auth/login/json",
  summary: "Log in with a JSON body",
  tags: AUTH,
  middleware: readJson,
  request: { body: jsonRequest(LoginJson) },
  responses: { 200: json("Tokens", TokenOut), 401: WRONG_CREDENTIALS, 429: TOO_MANY_FAILURES },
});

export const refresh = createRoute({
  method: "post",
  path: "/api/v1/auth/refresh",
  summary: "Trade a refresh token for a new pair; the presented one is used up",
  tags: AUTH,
  middleware: readJson,
  request: { body: jsonRequest(RefreshBody) },
  responses: { 200: json("Tokens", TokenOut) },
});

const InviteBody = z.object({
  ttl_hours: z.int().min(1).max(720).default(168).describe("how long it can be used (default 7 days)"),
});
const InviteOut = z
  .object({
    token: z.string().describe("shown once: only its hash is kept; give it as invite_token to register"),
    expires_at: z.string(),
  })
  .meta({ id: "Invitation" });

export const createInvite = createRoute({
  method: "post",
  path: "/api/v1/auth/invites",
  summary: "Issue a single-use invitation to register (superuser)",
  tags: AUTH,
  middleware: inOrder(superuserOnly, readJson),
  security: BEARER,
  request: { body: jsonRequest(InviteBody) },
  responses: { 201: json("The invitation", InviteOut), 403: problemJson("Not a superuser") },
});

export const logout = createRoute({
  method: "post",
  path: "/api/v1/auth/logout",
  summary: "Log out everywhere: every refresh and access token of the caller stops working",
  tags: AUTH,
  middleware: signedIn,
  security: BEARER,
  responses: { 204: { description: "Logged out" } },
});

const me = (path: string) =>
  createRoute({
    method: "get",
    path,
    summary: "The caller's account",
    tags: AUTH,
    middleware: signedIn,
    security: BEARER,
    responses: { 200: json("The user", UserOut) },
  });

export function authRoutes(
  app: GatewayApp,
  accounts: Accounts,
  throttle: LoginThrottle,
  mode: Registration,
): void {
  // Failed logins are counted per account and per address; while either is blocked, a 429.
  const logIn = async (c: { get(key: "clientIp"): string }, login: string, password: string) =>
    throttle.attempt({ account: await accounts.throttleKey(login), ip: c.get("clientIp") }, () =>
      accounts.login(login, password),
    );

  app.openapi(register, async (c) => {
    const body = c.req.valid("json");
    const input = {
      email: body.email,
      password: body.password,
      username: body.username,
      fullName: body.full_name ?? body.name ?? null,
    };
    const user = await accounts.signUp(input, mode, body.invite_token);
    const tokens = await accounts.issue(user);
    const { user: out, ...tokenFields } = tokens;
    return c.json({ ...out, user: out, ...tokenFields }, 201);
  });

  // With two media types the library types each body as either schema; only the one sent was validated.
  app.openapi(login, async (c) => {
    if (isJson(c.req.header("content-type"))) {
      const body = c.req.valid("json") as z.output<typeof LoginJson>;
      return c.json(await logIn(c, (body.email ?? body.username)!, body.password), 200);
    }
    const body = c.req.valid("form") as z.output<typeof LoginForm>;
    return c.json(await logIn(c, body.username, body.password), 200);
  });

  app.openapi(loginJson, async (c) => {
    const body = c.req.valid("json");
    return c.json(await logIn(c, (body.username ?? body.email)!, body.password), 200);
  });

  app.openapi(refresh, async (c) => c.json(await accounts.refresh(c.req.valid("json").refresh_token), 200));

  app.openapi(createInvite, async (c) => {
    const ttlSeconds = c.req.valid("json").ttl_hours * 3600;
    const invite = await accounts.invite(c.get("user").id, ttlSeconds);
    return c.json({ token: invite.token, expires_at: invite.expiresAt.toISOString() }, 201);
  });

  app.openapi(logout, async (c) => {
    await accounts.logout(c.get("user").id);
    return c.body(null, 204);
  });

  for (const path of ["/api/v1/auth/me", "/api/v1/auth/profile"]) {
    app.openapi(me(path), (c) => c.json(userOut(c.get("user")), 200));
  }
}
