import type { Context, MiddlewareHandler } from "hono";
import { type RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";
import type { AppEnv } from "../http/env.ts";
import { Problem } from "../http/problem.ts";

/** Whole seconds until a refused client may try again (at least 1). */
export const secondsUntil = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/** Every refusal for being over a limit: a 429 problem document that says when to come back. */
export function tooManyRequests(detail: string, retryAfterSeconds: number, limit?: number): Problem {
  return new Problem(429, `${detail}; retry in ${retryAfterSeconds} s`, {
    headers: {
      "Retry-After": String(retryAfterSeconds),
      ...(limit !== undefined && { "RateLimit-Limit": String(limit), "RateLimit-Remaining": "0" }),
    },
  });
}

/**
 * Takes one point for `key`, or throws the 429 when it has none left. The limiter rejects with a
 * RateLimiterRes when over the limit and with an Error when neither its store nor its insurance
 * could count: that one is not the caller's fault and goes on as a dependency failure.
 */
export async function consumeOrRefuse(limiter: RateLimiterPostgres, key: string): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key);
  } catch (rejection) {
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
    throw tooManyRequests(
      `Rate limit exceeded: ${limiter.points} requests per ${limiter.duration} s`,
      secondsUntil(rejection.msBeforeNext),
      limiter.points,
    );
  }
}

/** Takes a point for the key `keyOf` picks, before anything else costs work; counted across every replica. */
function limitBy(
  keyOf: (c: Context<AppEnv>) => { limiter: RateLimiterPostgres; key: string },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { limiter, key } = keyOf(c);
    const res = await consumeOrRefuse(limiter, key);
    // Go on from a fresh turn of the event loop, not from inside the database driver's socket
    // callback: continued from there, a 413 for a body still streaming in lost the race with the
    // connection's close, and the client saw a reset instead of the answer ("a 413 closes the
    // connection" in http.int.test.ts fails without this; a timer delay of the same length passes).
    await new Promise((resolve) => setImmediate(resolve));
    await next();
    c.header("RateLimit-Limit", String(limiter.points));
    c.header("RateLimit-Remaining", String(res.remainingPoints));
  };
}

/** Per client IP (the credential routes' tighter limit). */
export const limitPerIp = (limiter: RateLimiterPostgres): MiddlewareHandler<AppEnv> =>
  limitBy((c) => ({ limiter, key: c.get("clientIp") }));

/**
 * Every request counted once: a signed-in caller's (a valid token, after `identify`) against the
 * user from any address, anyone else's against the address. One count per request, not two: an
 * address shared by many users (a NAT, an office) does not throttle them together, and a forged or
 * expired token is anonymous, so it cannot spend another user's points.
 */
export const limitPerCaller = (
  perUser: RateLimiterPostgres,
  perIp: RateLimiterPostgres,
): MiddlewareHandler<AppEnv> =>
  limitBy((c) => {
    const claims = c.get("claims");
    return claims
      ? { limiter: perUser, key: String(claims.userId) }
      : { limiter: perIp, key: c.get("clientIp") };
  });
