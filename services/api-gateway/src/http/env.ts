import type { OpenAPIHono } from "@hono/zod-openapi";
import type { TokenClaims } from "../auth/tokens.ts";
import type { UserRow } from "../store/users.ts";
import type { Problem } from "./problem.ts";

/** What middleware hands to the routes of one request. */
export interface AppEnv {
  Variables: {
    /** A valid token's claims (signature, expiry, type), before the user row is read. */
    claims: TokenClaims | undefined;
    /** The authenticated caller, when a valid token came with the request. */
    user: UserRow | undefined;
    /** Why authentication failed, kept until a route that needs a user asks. */
    authProblem: Problem | undefined;
    clientIp: string;
    /** The request's Idempotency-Key (POST, not auth): it decides the ids the request mints. */
    idempotencyKey: string | undefined;
  };
}

/** What a route behind `signedIn` or `superuserOnly` knows: who is calling. */
export interface CallerEnv {
  Variables: { user: UserRow };
}

/** The gateway's app: routes are registered with `app.openapi(route, handler)`, so each is described once. */
export type GatewayApp = OpenAPIHono<AppEnv>;
