import type { Kysely } from "kysely";
import type { RateLimiterPostgres } from "rate-limiter-flexible";
import { Problem } from "../http/problem.ts";
import type { GatewayDb } from "../store/db.ts";
import { secondsUntil, tooManyRequests } from "./rate-limit.ts";
import { sharedLimiter } from "./store.ts";

export interface LoginThrottleConfig {
  /** Failures in a row an account may have before each further one blocks it for a while. */
  readonly freeFailuresPerAccount: number;
  /** Failures one address may have (against any accounts) before each further one blocks it. */
  readonly freeFailuresPerIp: number;
  /** The first block; each further failure doubles it, up to `maxBlockSeconds`. */
  readonly baseBlockSeconds: number;
  readonly maxBlockSeconds: number;
  /** How long failures are remembered after the first of them. */
  readonly failureWindowSeconds: number;
}

/** Backoff for failures of one kind of key (an account, an address): a count and a block, shared. */
class Backoff {
  readonly #failures: RateLimiterPostgres;
  readonly #blocks: RateLimiterPostgres;
  readonly #free: number;
  readonly #config: LoginThrottleConfig;

  constructor(db: Kysely<GatewayDb>, kind: string, free: number, config: LoginThrottleConfig) {
    // Counts only: `points` is never reached, the count decides the block.
    this.#failures = sharedLimiter(db, {
      prefix: `login-fail-${kind}`,
      points: Number.MAX_SAFE_INTEGER,
      durationSeconds: config.failureWindowSeconds,
    });
    this.#blocks = sharedLimiter(db, { prefix: `login-block-${kind}`, points: 1, durationSeconds: 1 });
    this.#free = free;
    this.#config = config;
  }

  /** Milliseconds the key is still blocked for; 0 when it is not. */
  async blockedFor(key: string): Promise<number> {
    const block = await this.#blocks.get(key);
    return block && block.consumedPoints > this.#blocks.points ? block.msBeforeNext : 0;
  }

  async failed(key: string): Promise<void> {
    const { consumedPoints } = await this.#failures.penalty(key);
    const over = consumedPoints - this.#free - 1;
    if (over < 0) return;
    const seconds = Math.min(this.#config.maxBlockSeconds, this.#config.baseBlockSeconds * 2 ** over);
    await this.#blocks.block(key, seconds);
  }

  async succeeded(key: string): Promise<void> {
    await Promise.all([this.#failures.delete(key), this.#blocks.delete(key)]);
  }
}

/**
 * Password guessing, slowed per account and per address, in the gateway's database so every
 * replica sees the same counts (rate-limiter-flexible's login-protection pattern, with a growing
 * block). After the free failures each further one blocks the account (or the address) for twice
 * as long as the last, up to the maximum; while blocked, attempts are refused with a 429 before the
 * password is checked, so a guess spread over many addresses gets nowhere. A success resets the
 * account's count, not the address's (a guesser could otherwise clear it with an account of its own).
 * The account key is the account a login names, so its username and its email share one count
 * (Accounts.throttleKey); a login that names none is counted as typed, with the same answers.
 */
export class LoginThrottle {
  readonly #accounts: Backoff;
  readonly #ips: Backoff;

  constructor(db: Kysely<GatewayDb>, config: LoginThrottleConfig) {
    this.#accounts = new Backoff(db, "account", config.freeFailuresPerAccount, config);
    this.#ips = new Backoff(db, "ip", config.freeFailuresPerIp, config);
  }

  /** Runs `login` unless the account or the address is blocked; counts its 401 as a failure. */
  async attempt<T>(who: { account: string; ip: string }, login: () => Promise<T>): Promise<T> {
    const { account } = who;
    const [accountMs, ipMs] = await Promise.all([
      this.#accounts.blockedFor(account),
      this.#ips.blockedFor(who.ip),
    ]);
    const waitMs = Math.max(accountMs, ipMs);
    if (waitMs > 0) throw tooManyRequests("Too many failed logins", secondsUntil(waitMs));
    try {
      const result = await login();
      await this.#accounts.succeeded(account);
      return result;
    } catch (error) {
      if (error instanceof Problem && error.status === 401) {
        await Promise.all([this.#accounts.failed(account), this.#ips.failed(who.ip)]);
      }
      throw error;
    }
  }
}
