import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.ts";
import { Problem } from "./problem.ts";

/**
 * Fixed-window counters in memory, one per key (`ip:…`, `user:…`). A window is short and the
 * limits are generous, so the burst allowed at a window boundary (twice the limit) is acceptable;
 * behind several gateway replicas each enforces its own share.
 */
export interface RateDecision {
  readonly allowed: boolean;
  readonly limit: number;
  readonly remaining: number;
  /** Seconds until the window resets (at least 1). */
  readonly retryAfterSeconds: number;
}

export class RateLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, { start: number; count: number }>();
  #lastSweep = 0;

  constructor(limit: number, windowMs: number, now: () => number = Date.now) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  hit(key: string): RateDecision {
    const now = this.#now();
    this.#sweep(now);
    let window = this.#windows.get(key);
    if (!window || now - window.start >= this.#windowMs) {
      window = { start: now, count: 0 };
      this.#windows.set(key, window);
    }
    window.count += 1;
    const retryAfterSeconds = Math.max(1, Math.ceil((window.start + this.#windowMs - now) / 1000));
    return {
      allowed: window.count <= this.#limit,
      limit: this.#limit,
      remaining: Math.max(0, this.#limit - window.count),
      retryAfterSeconds,
    };
  }

  /** Drops finished windows now and then so memory stays bounded by the clients of one window. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < this.#windowMs) return;
    this.#lastSweep = now;
    for (const [key, window] of this.#windows) {
      if (now - window.start >= this.#windowMs) this.#windows.delete(key);
    }
  }
}

export function tooManyRequests(decision: RateDecision): Problem {
  return new Problem(
    429,
    `Rate limit exceeded: ${decision.limit} requests per window; retry in ${decision.retryAfterSeconds} s`,
    {
      headers: {
        "Retry-After": String(decision.retryAfterSeconds),
        "RateLimit-Limit": String(decision.limit),
        "RateLimit-Remaining": "0",
      },
    },
  );
}

/** Per client IP, before anything else costs work. */
export function limitPerIp(limiter: RateLimiter): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const decision = limiter.hit(`ip:${c.get("clientIp")}`);
    if (!decision.allowed) throw tooManyRequests(decision);
    await next();
    c.header("RateLimit-Limit", String(decision.limit));
    c.header("RateLimit-Remaining", String(decision.remaining));
  };
}
