import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields } from "@mikrom/telemetry";
import pg from "pg";
import type { Publish } from "./outbox.ts";
import { setIdle, Wakeup, waitForRunningAppends } from "./relay-idle.ts";
import {
  markSent,
  messageOf,
  type OutboxRecord,
  pruneSent,
  readUnsent,
  requeueRecent,
} from "./relay-rows.ts";

const log = createLogger("mikrom.eventstore.relay");

export interface RelayOptions {
  readonly connectionString: string;
  /** Publishes one message; resolves only once JetStream has acknowledged it. */
  readonly publish: Publish;
  /** Rows read and published (concurrently, in order) per round (default 256). */
  readonly batchSize?: number;
  /** The safety net: how often an idle relay looks at the outbox without being notified (default 5 s). */
  readonly pollIntervalMs?: number;
  /**
   * How long a relay that found the outbox empty waits before looking once more, and only then goes
   * idle (default 10 ms). Under load the next rows come within it, so the relay never pays for going
   * idle and coming back (two flag updates, a look at the running transactions, and a NOTIFY in
   * every append meanwhile). `nudge` ends the wait at once; a row written by another process (a
   * replica) while the relay lingers waits at most this long.
   */
  readonly lingerMs?: number;
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
  /** Rows were committed in this process (see EventStore.onCommit): look now, asleep or lingering. */
  nudge(): void;
  stats(): RelayStats;
}

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
      lingerMs: options.lingerMs ?? 10,
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
    this.#wakeup.close();
    await this.#running;
  }

  resendRecent(): void {
    this.#resendRequested = true;
    this.#wakeup.notify();
  }

  nudge(): void {
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
      await setIdle(client, false).catch(() => {});
    }
    this.#leader = false;
    await client.end().catch(() => {});
  }

  async #pump(client: pg.Client, broken: () => unknown): Promise<void> {
    const { batchSize, pollIntervalMs, lingerMs } = this.#options;
    await setIdle(client, false);
    let idle = false;
    let lingered = false;
    let failures = 0;
    while (!this.#stopping) {
      if (broken()) throw broken();
      // A wake-up from before this round is answered by it; only a later one may end the next wait.
      this.#wakeup.clear();
      await this.#keep(client);
      const rows = await readUnsent(client, batchSize);
      if (rows.length === 0) {
        if (!idle && !lingered) {
          lingered = true;
          await this.#wakeup.wait(lingerMs);
          continue;
        }
        if (!idle) {
          await setIdle(client, true);
          idle = true;
          this.#idled++;
          await waitForRunningAppends(client, this.#stop.signal);
          continue; // look once more: an append that missed the idle flag has committed by now
        }
        await this.#wakeup.wait(pollIntervalMs);
        continue;
      }
      lingered = false;
      if (idle) {
        await setIdle(client, false);
        idle = false;
      }
      const sent = await this.#publishAll(rows);
      if (sent.length > 0) await markSent(client, sent);
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
    const results = await Promise.allSettled(rows.map(async (row) => this.#options.publish(messageOf(row))));
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
      const rowCount = await requeueRecent(client, resendWindowMs);
      this.#resent += rowCount;
      if (rowCount) log.info({ rows: rowCount, window_ms: resendWindowMs }, "sending recent messages again");
    }
    if (Date.now() - this.#prunedAt >= Math.min(60_000, retentionMs / 10)) {
      this.#prunedAt = Date.now();
      await pruneSent(client, retentionMs);
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
