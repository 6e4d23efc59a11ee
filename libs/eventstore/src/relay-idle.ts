import { setTimeout as delay } from "node:timers/promises";
import type pg from "pg";

/*
 * How the relay sleeps when the outbox is empty without missing an append: it marks itself idle (so
 * appends start to NOTIFY), waits out the appends that may not have seen the flag, and sleeps until
 * a NOTIFY, a lost connection, stop or the poll interval wakes it.
 */

/** Resolves a sleeping relay early: a NOTIFY, a failed connection, or stop. */
export class Wakeup {
  #pending = false;
  #closed = false;
  #resolve: (() => void) | undefined;

  notify(): void {
    this.#pending = true;
    this.#resolve?.();
  }

  /** Forgets the wake-ups so far: the relay is about to read, which sees what they announced. */
  clear(): void {
    this.#pending = false;
  }

  /** Every wait from now on returns at once (the relay stops). */
  close(): void {
    this.#closed = true;
    this.notify();
  }

  async wait(ms: number): Promise<void> {
    if (!this.#pending && !this.#closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.#resolve = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#resolve = undefined;
    }
    this.#pending = false;
  }
}

/** Appends read this flag and NOTIFY only while it is set (NOTIFY serializes commits). */
export async function setIdle(client: pg.Client, idle: boolean): Promise<void> {
  await client.query("UPDATE outbox_relay SET idle = $1", [idle]);
}

/**
 * How long going idle waits at most for appends that were running (see waitForRunningAppends);
 * past it, a long transaction is left to the poll.
 */
const IDLE_WAIT_MS = 5000;

/**
 * An append reads the idle flag in its statement's snapshot; one whose snapshot predates the flag
 * has not notified, and may not have committed when the relay looks again. So before sleeping the
 * relay waits for the transactions of this database that were running when it went idle: those
 * holding a snapshot or a transaction id then, until each has ended (bounded by IDLE_WAIT_MS).
 */
export async function waitForRunningAppends(client: pg.Client, stop: AbortSignal): Promise<void> {
  const { rows } = await client.query<{ pids: number[]; starts: string[] }>(
    `SELECT coalesce(array_agg(pid), '{}') AS pids, coalesce(array_agg(xact_start::text), '{}') AS starts
     FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
       AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)`,
  );
  const { pids = [], starts = [] } = rows[0] ?? {};
  const deadline = Date.now() + IDLE_WAIT_MS;
  for (
    let pause = 2;
    pids.length > 0 && Date.now() < deadline && !stop.aborted;
    pause = Math.min(50, pause * 2)
  ) {
    const running = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity a
       JOIN unnest($1::int[], $2::timestamptz[]) AS t(pid, xact_start)
         ON a.pid = t.pid AND a.xact_start = t.xact_start`,
      [pids, starts],
    );
    if ((running.rows[0]?.n ?? 0) === 0) return;
    await delay(pause, undefined, { signal: stop }).catch(() => {});
  }
}
