import { randomUUID } from "node:crypto";
import { isUnavailable } from "@mikrom/bus";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { type Kysely, sql } from "kysely";
import type { GatewayDb } from "../store/db.ts";
import { tooManyRequests } from "./rate-limit.ts";

const log = createLogger("mikrom.api-gateway.limits");

export interface ConcurrencyCap {
  /** Takes a slot for the user, or throws the 429; the returned function gives it back (once). */
  acquire(userId: number): Promise<() => void>;
}

/**
 * How many long-lived requests (SSE streams, `/wait`s) one user holds open, counted across every
 * replica in the gateway's database (`held_requests`, migration 007). A user has `max` numbered
 * slots per kind; a request claims a free one in one statement (the slot is the key, so two
 * replicas can never both hold it) and deletes it when it ends. A slot is leased: its replica
 * renews the leases of the slots its requests hold every third of `leaseMs` (15 s), so a replica
 * that dies gives its slots back within a lease, and a stopping one gives them back at once. While
 * the database does not answer, each replica counts in memory instead (the insurance the rate
 * limits use), so held requests are still capped, per replica.
 */
interface Slot {
  readonly userId: number;
  readonly kind: string;
  readonly slot: number;
}

export class HeldRequests {
  readonly #db: Kysely<GatewayDb>;
  readonly #leaseMs: number;
  readonly #replica = randomUUID();
  /** The slots this replica's requests hold: only their leases are renewed. */
  readonly #held = new Set<Slot>();
  /**
   * Slots whose request ended but whose row is not deleted yet, and when they ended: deleted again at
   * each renewal until their lease has run out (then the row no longer counts anyway).
   */
  readonly #ended = new Map<Slot, number>();
  #renewal: NodeJS.Timeout | undefined;

  constructor(db: Kysely<GatewayDb>, options: { leaseMs?: number } = {}) {
    this.#db = db;
    this.#leaseMs = options.leaseMs ?? 15_000;
  }

  /** A cap of `max` held requests of one kind per user; a refusal says to retry after `retryAfterSeconds`. */
  cap(kind: string, max: number, retryAfterSeconds: number): ConcurrencyCap {
    const memory = new Map<number, number>();
    const refuse = (): never => {
      throw tooManyRequests(`Too many concurrent ${kind}: at most ${max} per user`, retryAfterSeconds, max);
    };
    return {
      acquire: async (userId) => {
        let claimed: number | undefined;
        try {
          // Two requests may race for the same free slot (one wins): the loser tries once more.
          claimed = (await this.#claim(kind, userId, max)) ?? (await this.#claim(kind, userId, max));
        } catch (error) {
          if (!isUnavailable(error)) throw error;
          log.warn(errorFields(error), "Held requests counted per replica while the database is away");
          return inMemory(memory, userId, max, refuse);
        }
        if (claimed === undefined) return refuse();
        const slot: Slot = { userId, kind, slot: claimed };
        this.#held.add(slot);
        this.#schedule();
        let released = false;
        return () => {
          if (released) return;
          released = true;
          this.#held.delete(slot);
          this.#ended.set(slot, Date.now());
          void this.#delete([slot]);
        };
      },
    };
  }

  /** Gives back every slot of this replica at once (a gateway stopping), rather than within a lease. */
  async releaseAll(): Promise<void> {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    this.#held.clear();
    this.#ended.clear();
    await this.#db
      .deleteFrom("held_requests")
      .where("replica", "=", this.#replica)
      .execute()
      .catch((error: unknown) => log.warn(errorFields(error), "Giving back held requests' slots failed"));
  }

  /** A free slot (picked at random among them, so racing requests seldom collide) claimed, or undefined. */
  async #claim(kind: string, userId: number, max: number): Promise<number | undefined> {
    const lease = sql`now() + ${this.#leaseMs} * interval '1 millisecond'`;
    const { rows } = await sql<{ slot: number }>`
      INSERT INTO held_requests (user_id, kind, slot, replica, expires_at)
      SELECT ${userId}, ${kind}, s, ${this.#replica}::uuid, ${lease}
      FROM generate_series(1, ${max}::int) AS s
      WHERE NOT EXISTS (
        SELECT 1 FROM held_requests h
        WHERE h.user_id = ${userId} AND h.kind = ${kind} AND h.slot = s AND h.expires_at > now())
      ORDER BY random() LIMIT 1
      ON CONFLICT (user_id, kind, slot) DO UPDATE
        SET replica = excluded.replica, expires_at = excluded.expires_at
        WHERE held_requests.expires_at <= now()
      RETURNING slot`.execute(this.#db);
    return rows[0]?.slot;
  }

  /** Deletes ended slots' rows; those it could not delete stay in #ended for the next renewal. */
  async #delete(slots: readonly Slot[]): Promise<void> {
    if (slots.length === 0) return;
    try {
      await sql`
        DELETE FROM held_requests h
        USING unnest(${slots.map((s) => s.userId)}::int[], ${slots.map((s) => s.kind)}::text[],
                     ${slots.map((s) => s.slot)}::int[]) AS x(user_id, kind, slot)
        WHERE h.user_id = x.user_id AND h.kind = x.kind AND h.slot = x.slot
          AND h.replica = ${this.#replica}::uuid`.execute(this.#db);
      for (const slot of slots) this.#ended.delete(slot);
    } catch (error) {
      // Not renewed, the rows' leases give the slots back in any case.
      log.warn(errorFields(error), "Giving back a held request's slot failed; retried at the next renewal");
    }
    this.#schedule();
  }

  /** The renewal runs while this replica holds a slot or has an ended one to give back. */
  #schedule(): void {
    const busy = this.#held.size > 0 || this.#ended.size > 0;
    if (busy && !this.#renewal) {
      this.#renewal = setInterval(() => void this.#renew(), Math.max(100, Math.floor(this.#leaseMs / 3)));
      this.#renewal.unref();
    } else if (!busy && this.#renewal) {
      clearInterval(this.#renewal);
      this.#renewal = undefined;
    }
  }

  async #renew(): Promise<void> {
    for (const [slot, endedAt] of this.#ended)
      if (Date.now() - endedAt > this.#leaseMs) this.#ended.delete(slot);
    await this.#delete([...this.#ended.keys()]);
    const held = [...this.#held];
    if (held.length === 0) return;
    try {
      await sql`
        UPDATE held_requests h SET expires_at = now() + ${this.#leaseMs} * interval '1 millisecond'
        FROM unnest(${held.map((s) => s.userId)}::int[], ${held.map((s) => s.kind)}::text[],
                    ${held.map((s) => s.slot)}::int[]) AS x(user_id, kind, slot)
        WHERE h.user_id = x.user_id AND h.kind = x.kind AND h.slot = x.slot
          AND h.replica = ${this.#replica}::uuid`.execute(this.#db);
    } catch (error) {
      log.warn(errorFields(error), "Renewing the leases of held requests failed");
    }
  }
}

/** The per-replica count used while the database is away. */
function inMemory(held: Map<number, number>, userId: number, max: number, refuse: () => never): () => void {
  const now = held.get(userId) ?? 0;
  if (now >= max) refuse();
  held.set(userId, now + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (held.get(userId) ?? 1) - 1;
    if (left <= 0) held.delete(userId);
    else held.set(userId, left);
  };
}
