import { setContext } from "@mikrom/telemetry";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv, CallerEnv } from "../http/env.ts";
import { Problem } from "../http/problem.ts";
import type { UserRow, UserStore } from "../store/users.ts";
import { InvalidToken, type Tokens } from "./tokens.ts";

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const CHALLENGE = { "WWW-Authenticate": "Bearer" };

export const unauthorized = (detail = "Not authenticated"): Problem =>
  new Problem(401, detail, { headers: CHALLENGE });

/** Paths where a token may come as `?token=` (EventSource cannot send headers). */
const QUERY_TOKEN_PATHS = new Set(["/api/v1/events/vms"]);

function tokenOf(c: Context): string | undefined {
  const header = c.req.header("authorization");
  if (header) return BEARER.exec(header)?.[1] ?? "";
  if (QUERY_TOKEN_PATHS.has(c.req.path)) return c.req.query("token");
  return undefined;
}

/**
 * Checks a token when one is present (signature, expiry, type: no database), without refusing
 * anything: `claims`, or the 401 a route that needs a user will give. The rate limit keys on it.
 */
export function identify(tokens: Tokens): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = tokenOf(c);
    if (token !== undefined) {
      try {
        c.set("claims", await tokens.verify(token, "access"));
      } catch (error) {
        if (!(error instanceof InvalidToken)) throw error;
        c.set("authProblem", unauthorized(error.message));
      }
    }
    await next();
  };
}

/**
 * Reads the caller for `identify`'s claims, without refusing anything: public routes ignore the
 * outcome, protected ones have `signedIn` or `superuserOnly` as route middleware. Knowing the user
 * this early lets the idempotency scope apply to every route.
 */
export function authenticate(users: UserStore): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const claims = c.get("claims");
    if (!claims) return next();
    const user = await users.byId(claims.userId);
    if (!user) {
      c.set("authProblem", unauthorized("Could not validate credentials"));
    } else if (!user.is_active) {
      c.set("authProblem", new Problem(403, "Inactive user"));
    } else if (claims.generation !== user.token_generation) {
      // The row is read on every request anyway (deactivation must hold at once), so a session
      // ended by logout, a password change or refresh-token reuse ends here with no cache to expire.
      c.set("authProblem", unauthorized("Token has been revoked"));
    } else {
      c.set("user", user);
      setContext({ user_id: String(user.id), user_name: user.username });
    }
    return next();
  };
}

/** The caller, or the 401/403 that explains why there is none (`authenticate` left one or the other). */
function requireUser(c: Context): UserRow {
  const user: UserRow | undefined = c.get("user");
  if (user) return user;
  const problem: Problem | undefined = c.get("authProblem");
  throw problem ?? unauthorized();
}

function requireSuperuser(c: Context): UserRow {
  const user = requireUser(c);
  if (!user.is_superuser) throw new Problem(403, "The user doesn't have enough privileges");
  return user;
}

/**
 * Route middleware (a route's `middleware`, beside `security: BEARER`): the caller must be signed
 * in. It runs before the route's inputs are validated, so a request without a valid token is a 401
 * whatever else is wrong with it.
 */
export const signedIn: MiddlewareHandler<CallerEnv> = async (c, next) => {
  requireUser(c);
  await next();
};

/** Route middleware: the caller must be a superuser (401 without a token, 403 for anyone else). */
export const superuserOnly: MiddlewareHandler<CallerEnv> = async (c, next) => {
  requireSuperuser(c);
  await next();
};
