import { tooManyRequests } from "./rate-limit.ts";

/**
 * How many long-lived requests (SSE streams, `/wait`s) one user holds open on this replica. What a
 * held request costs (a socket, a NATS consumer or a wait in vm-service, memory) is spent by the
 * replica that holds it, so the cap is kept where that cost is, in memory: a slot is taken when the
 * request starts and given back when it ends, and a crash gives back all of them. A user reaching
 * several replicas holds at most the cap on each.
 */
export class ConcurrencyCap {
  readonly #what: string;
  readonly #max: number;
  readonly #retryAfterSeconds: number;
  readonly #held = new Map<number, number>();

  constructor(what: string, max: number, retryAfterSeconds: number) {
    this.#what = what;
    this.#max = max;
    this.#retryAfterSeconds = retryAfterSeconds;
  }

  /** Takes a slot for the user, or throws the 429; the returned function gives it back (once). */
  acquire(userId: number): () => void {
    const held = this.#held.get(userId) ?? 0;
    if (held >= this.#max) {
      throw tooManyRequests(
        `Too many concurrent ${this.#what}: at most ${this.#max} per user`,
        this.#retryAfterSeconds,
        this.#max,
      );
    }
    this.#held.set(userId, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.#held.get(userId) ?? 1) - 1;
      if (now <= 0) this.#held.delete(userId);
      else this.#held.set(userId, now);
    };
  }
}
