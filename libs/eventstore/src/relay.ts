import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields } from "@mikrom/telemetry";
import pg from "pg";
import type { OutboxMessage, Publish } from "./outbox.ts";

const log = createLogger("mikrom.eventstore.relay");

export interface RelayOptions {
  readonly connectionString: string;
  /** Publishes one message; resolves only once JetStream has acknowledged it. */
  readonly publish: Publish;
  /** Rows read and published (concurrently, in order) per round (default 256). */
  readonly batchSize?: number;
  /** The safety net: how often an idle relay looks at the outbox without being notified (default 5 s). */
  readonly pollIntervalMs?: number;
  /** Back-off after a failed publish or a lost connection: from `initialMs`, doubling, up to `maxMs` (100 ms, 5 s). */
  readonly retry?: { readonly initialMs?: number; readonly maxMs?: number };
  /** How often a relay without the lease tries to take it over (default 2 s). */
  readonly leaseRetryMs?: number;
  /**
   * Sent rows are kept this long (default 15 min): long enough to send again what a crashed NATS
   * lost (resendRecent), and to answer again a message delivered twice (see store.resendCausedBy).
   */
  readonly retentionMs?: number;
  /** What resendRecent sends again: the rows sent this long before it (default 30 s). */
  readonly resendWindowMs?: number;
}

export interface RelayStats {
  /** Whether this relay holds the lease (only one relay per database publishes). */
  readonly leader: boolean;
  readonly published: number;
  readonly failedPublishes: number;
  /** Times the relay went to sleep with an empty outbox. */
  readonly idled: number;
  /** Rows sent again by resendRecent. */
  readonly resent: number;
}

export interface Relay {
  start(): void;
  /** Stops after the round in flight (its acknowledged rows are marked sent); releases the lease. */
  stop(): Promise<void>;
  /**
   * Sends again, before anything newer, what was sent within the resend window: call it when NATS
   * comes back, since a server that crashed may have lost messages it had already acknowledged
   * (nats-server flushes to disk later; Jepsen showed acknowledged writes lost). JetStream drops the
   * re-sends it still has, and the consumers' inboxes absorb any other duplicate.
   */
  resendRecent(): void;
  stats(): RelayStats;
}

interface OutboxRecord {
  id: string;
  message_id: string;
  subject: string;
  data: unknown;
  headers: Record<string, string>;
  carrier: Record<string, string>;
  created_at: Date;
}

/** Resolves a sleeping relay early: a NOTIFY, a failed connection, or stop. */
class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  notify(): void {
    this.#pending = true;
    this.#resolve?.();
  }

  async wait(ms: number): Promise<void> {
    if (!this.#pending) {
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

/**
 * How long going idle waits at most for appends that were running (see #waitForRunningAppends);
 * past it, a long transaction is left to the poll.
 */
const IDLE_WAIT_MS = 5000;

/**
 * Publishes the outbox to JetStream. One relay per database holds the lease (a session advisory
 * lock on its own connection, released by PostgreSQL if the process dies) and publishes rows in id
 * order, each with `Nats-Msg-Id` = its message id; a row is marked sent only after JetStream's ack,
 * and kept for the retention (see resendRecent and store.resendCausedBy). A crash
 * anywhere re-sends at most the rows in flight, which JetStream's duplicate window and the consumers'
 * inbox absorb. It sleeps on LISTEN/NOTIFY when the outbox is empty, with a slow poll as a safety net.
 */
class OutboxRelay implements Relay {
  readonly #options: Required<Omit<RelayOptions, "retry">> & { retry: { initialMs: number; maxMs: number } };
  #resendRequested = false;
  #resent = 0;
  #prunedAt = 0;
  readonly #wakeup = new Wakeup();
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #leader = false;
  #published = 0;
  #failedPublishes = 0;
  #idled = 0;

  constructor(options: RelayOptions) {
    this.#options = {
      connectionString: options.connectionString,
      publish: options.publish,
      batchSize: options.batchSize ?? 256,
      pollIntervalMs: options.pollIntervalMs ?? 5000,
      leaseRetryMs: options.leaseRetryMs ?? 2000,
      retentionMs: options.retentionMs ?? 15 * 60_000,
      resendWindowMs: options.resendWindowMs ?? 30_000,
      retry: { initialMs: options.retry?.initialMs ?? 100, maxMs: options.retry?.maxMs ?? 5000 },
    };
  }

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wakeup.notify();
    await this.#running;
  }

  resendRecent(): void {
    this.#resendRequested = true;
    this.#wakeup.notify();
  }

  stats(): RelayStats {
    return {
      leader: this.#leader,
      published: this.#published,
      failedPublishes: this.#failedPublishes,
      idled: this.#idled,
      resent: this.#resent,
    };
  }

  get #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  async #sleep(ms: number): Promise<void> {
    await delay(ms, undefined, { signal: this.#stop.signal }).catch(() => {});
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const client = new pg.Client({
        connectionString: this.#options.connectionString,
        application_name: "mikrom-relay",
      });
      let broken: unknown;
      client.on("error", (error) => {
        broken = error;
        this.#wakeup.notify();
      });
      client.on("notification", () => this.#wakeup.notify());
      let failed = false;
      try {
        await client.connect();
        if (await this.#lead(client)) {
          failures = 0;
          await this.#pump(client, () => broken);
        }
      } catch (error) {
        failed = true;
        if (!this.#stopping) {
          log.warn(
            { ...errorFields(error), attempt: failures + 1 },
            "outbox relay lost its connection; retrying",
          );
        }
      } finally {
        await this.#release(client, broken === undefined);
      }
      if (failed) await this.#sleep(this.#backoffMs(failures++));
    }
  }

  /** Waits until this relay holds the lease, or stop. */
  async #lead(client: pg.Client): Promise<boolean> {
    const { rows } = await client.query<{ channel: string; key: number }>(
      "SELECT 'mikrom_outbox.' || current_schema() AS channel, hashtext('mikrom.outbox.relay.' || current_schema()) AS key",
    );
    const { channel, key } = rows[0]!;
    while (!this.#stopping) {
      const lock = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [key]);
      if (lock.rows[0]?.ok) {
        this.#leader = true;
        await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
        log.info({ channel }, "outbox relay took the lease");
        return true;
      }
      await this.#sleep(this.#options.leaseRetryMs);
    }
    return false;
  }

  async #release(client: pg.Client, healthy: boolean): Promise<void> {
    if (this.#leader && healthy) {
      // Appenders stop notifying; the lease goes with the session.
      await client.query("UPDATE outbox_relay SET idle = false").catch(() => {});
    }
    this.#leader = false;
    await client.end().catch(() => {});
  }

  async #pump(client: pg.Client, broken: () => unknown): Promise<void> {
    const { batchSize, pollIntervalMs } = this.#options;
    await this.#setIdle(client, false);
    let idle = false;
    let failures = 0;
    while (!this.#stopping) {
      if (broken()) throw broken();
      await this.#keep(client);
      const { rows } = await client.query<OutboxRecord>(
        `SELECT id::text AS id, message_id::text AS message_id, subject, data, headers, carrier, created_at
         FROM outbox WHERE sent_at IS NULL ORDER BY outbox.id LIMIT $1`,
        [batchSize],
      );
      if (rows.length === 0) {
        if (!idle) {
          await this.#setIdle(client, true);
          idle = true;
          this.#idled++;
          await this.#waitForRunningAppends(client);
          continue; // look once more: an append that missed the idle flag has committed by now
        }
        await this.#wakeup.wait(pollIntervalMs);
        continue;
      }
      if (idle) {
        await this.#setIdle(client, false);
        idle = false;
      }
      const sent = await this.#publishAll(rows);
      if (sent.length > 0)
        await client.query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [sent]);
      if (sent.length < rows.length) {
        this.#failedPublishes += rows.length - sent.length;
        await this.#sleep(this.#backoffMs(failures++));
      } else {
        failures = 0;
      }
    }
  }

  /** Publishes a batch, all in flight at once in row order; returns the ids JetStream acknowledged. */
  async #publishAll(rows: readonly OutboxRecord[]): Promise<string[]> {
    const publish = async (row: OutboxRecord): Promise<void> =>
      this.#options.publish({
        id: BigInt(row.id),
        messageId: row.message_id,
        subject: row.subject,
        data: row.data,
        headers: row.headers,
        carrier: row.carrier,
        createdAt: row.created_at,
      } satisfies OutboxMessage);
    const results = await Promise.allSettled(rows.map(publish));
    const sent: string[] = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") sent.push(rows[i]!.id);
    });
    const failed = results.find((r) => r.status === "rejected");
    if (failed) {
      log.warn(
        { ...errorFields(failed.reason), failed: rows.length - sent.length, batch: rows.length },
        "publishing the outbox failed; the rows stay and are retried",
      );
    }
    this.#published += sent.length;
    return sent;
  }

  /**
   * Between rounds, on the relay's own connection (so a re-send never races the round marking rows
   * sent): re-queues the recent rows when asked, and forgets rows sent longer ago than the retention.
   */
  async #keep(client: pg.Client): Promise<void> {
    const { retentionMs, resendWindowMs } = this.#options;
    if (this.#resendRequested) {
      this.#resendRequested = false;
      const { rowCount } = await client.query(
        "UPDATE outbox SET sent_at = NULL WHERE sent_at > now() - make_interval(secs => $1)",
        [resendWindowMs / 1000],
      );
      this.#resent += rowCount ?? 0;
      if (rowCount) log.info({ rows: rowCount, window_ms: resendWindowMs }, "sending recent messages again");
    }
    if (Date.now() - this.#prunedAt >= Math.min(60_000, retentionMs / 10)) {
      this.#prunedAt = Date.now();
      await client.query("DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)", [
        retentionMs / 1000,
      ]);
    }
  }

  async #setIdle(client: pg.Client, idle: boolean): Promise<void> {
    await client.query("UPDATE outbox_relay SET idle = $1", [idle]);
  }

  /**
   * An append reads the idle flag in its statement's snapshot; one whose snapshot predates the flag
   * has not notified, and may not have committed when the relay looks again. So before sleeping the
   * relay waits for the transactions of this database that were running when it went idle: those
   * holding a snapshot or a transaction id then, until each has ended (bounded by IDLE_WAIT_MS).
   */
  async #waitForRunningAppends(client: pg.Client): Promise<void> {
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
      pids.length > 0 && Date.now() < deadline && !this.#stopping;
      pause = Math.min(50, pause * 2)
    ) {
      const running = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity a
         JOIN unnest($1::int[], $2::timestamptz[]) AS t(pid, xact_start)
           ON a.pid = t.pid AND a.xact_start = t.xact_start`,
        [pids, starts],
      );
      if ((running.rows[0]?.n ?? 0) === 0) return;
      await this.#sleep(pause);
    }
  }

  #backoffMs(failures: number): number {
    const { initialMs, maxMs } = this.#options.retry;
    return Math.min(maxMs, initialMs * 2 ** failures);
  }
}

export function createRelay(options: RelayOptions): Relay {
  return new OutboxRelay(options);
}
