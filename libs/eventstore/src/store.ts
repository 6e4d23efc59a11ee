import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields, traceTransaction } from "@mikrom/telemetry";
import { Kysely, PostgresDialect, sql } from "kysely";
import type { MigrationProvider } from "kysely/migration";
import { appendStatement, requeueCausedBy } from "./append.ts";
import { batched } from "./batched.ts";
import { EventCatalog, type EventDef, type EventsOf, type Upcaster } from "./catalog.ts";
import type { DomainEvent } from "./decider.ts";
import { ConcurrencyConflict } from "./errors.ts";
import { type Checkpoint, checkpointOf, type RecordedEvent, START } from "./event.ts";
import { databaseName, observeOutboxBacklog } from "./metrics.ts";
import { migrate } from "./migrations.ts";
import type { Router } from "./outbox.ts";
import { createPool, type PoolOptions, PREPARED } from "./pool.ts";
import { type Projection, replayAll } from "./projections.ts";
import { selectAfter, toRecorded } from "./read.ts";
import type { EventStoreTables } from "./schema.ts";
import {
  Operations,
  type RefusalRouter,
  type Session,
  type StoreParts,
  type StreamOperations,
} from "./session.ts";

export interface EventStoreOptions<Defs extends readonly EventDef[], DB> {
  readonly connectionString: string;
  /** The zod definitions (@mikrom/contracts `event(...)`) of every event this store holds, at their current version. */
  readonly events: Defs;
  readonly upcasters?: readonly Upcaster[];
  /** Subject (and headers) of each event to publish through the outbox; events it maps to undefined stay private. */
  readonly route?: Router<EventsOf<Defs>>;
  /** Where a refusal decided by `handle` is answered (CommandRejected); unset, refusals go unanswered. */
  readonly refusals?: RefusalRouter;
  /** Read models written in the append transaction. */
  readonly projections?: readonly Projection<EventsOf<Defs>, DB>[];
  /** The service's own migrations, run after the store's (with their own history table). */
  readonly migrations?: MigrationProvider;
  /** Run migrations when the store is created (default true). */
  readonly migrate?: boolean;
  readonly pool?: PoolOptions;
  /**
   * Inbox records older than this are forgotten, checked every tenth of it (default 7 days; 0 keeps
   * them forever). Keep it well beyond JetStream's duplicate window and any redelivery.
   */
  readonly inboxRetentionMs?: number;
}

const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
const log = createLogger("mikrom.eventstore.inbox");

export interface TransactionOptions {
  /** Runs the unit of work again this many times after a ConcurrencyConflict (default 3). */
  readonly maxRetries?: number;
}

export type Once<T> = { readonly duplicate: true } | { readonly duplicate: false; readonly result: T };

export interface ReadAllResult<E extends DomainEvent> {
  readonly events: RecordedEvent<E>[];
  /** Where the next read starts; unchanged when nothing was read. */
  readonly checkpoint: Checkpoint;
}

/** append, readStream, handle and send (StreamOperations) each run in a transaction of their own. */
export interface EventStore<E extends DomainEvent, DB> extends StreamOperations<E> {
  readonly connectionString: string;
  /** The pool as kysely, for the service's queries on its read models. */
  readonly db: Kysely<DB>;
  readonly poolSize: number;
  /** Every event after a checkpoint, in commit-safe order (see Checkpoint). */
  readAll(options?: { after?: Checkpoint; limit?: number }): Promise<ReadAllResult<E>>;
  /** Runs a unit of work in one transaction; retried whole after a ConcurrencyConflict. */
  transaction<T>(work: (session: Session<E, DB>) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Inbox: runs `work` and records `messageId` for `consumer` in one transaction. A message already
   * recorded (redelivered, or published twice) does nothing and reports `duplicate`; ack it either way.
   * Events appended inside carry the message id as their causation id.
   */
  handleOnce<T>(
    consumer: string,
    messageId: string,
    work: (session: Session<E, DB>) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<Once<T>>;
  /** Rebuilds an inline projection from all events (appends wait meanwhile). Returns the events replayed. */
  rebuild(projection: Projection<E, DB>): Promise<number>;
  /** Outbox rows not yet acknowledged by JetStream. */
  outboxBacklog(): Promise<number>;
  /**
   * Calls `listener` after each commit of a write through this store (the skeleton nudges the relay
   * with it, so a relay in this process publishes at once instead of waiting to be notified).
   */
  onCommit(listener: () => void): void;
  /** Whether `consumer` already handled `messageId`: for work that must not even start twice (a boot). */
  inboxHas(consumer: string, messageId: string): Promise<boolean>;
  /**
   * Sends again what handling `messageId` caused (events and commands, same message ids), while the
   * outbox keeps them: a duplicate is answered as the first delivery was. handleOnce does it for
   * every duplicate; returns the messages queued again.
   */
  resendCausedBy(messageId: string): Promise<number>;
  /** When a message first went out (JetStream's ack), while the outbox keeps it; null if not (yet). */
  firstSentAt(messageId: string): Promise<Date | null>;
  /** Forgets inbox records older than this (keep them longer than JetStream's redelivery and duplicate window). */
  pruneInbox(olderThanMs: number): Promise<number>;
  /** The store's catalog, routing and projections, for the package's own runners (createProjector). */
  readonly parts: StoreParts<E, DB>;
  close(): Promise<void>;
}

async function backoff(attempt: number): Promise<void> {
  // Writers that collided would collide again in lockstep; spread them out.
  await delay(Math.random() * 5 * 2 ** attempt);
}

export async function createEventStore<const Defs extends readonly EventDef[], DB = Record<string, never>>(
  options: EventStoreOptions<Defs, DB>,
): Promise<EventStore<EventsOf<Defs>, DB>> {
  type E = EventsOf<Defs>;
  const pool = createPool(options.connectionString, options.pool);
  const db = new Kysely<EventStoreTables>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (options.migrate ?? true) {
      await migrate(db, options.migrations ? { service: options.migrations } : {});
    }
  } catch (error) {
    await db.destroy();
    throw error;
  }

  const poolSize = options.pool?.max ?? 10;
  const database = databaseName(options.connectionString);
  const parts: StoreParts<E, DB> = {
    database,
    catalog: new EventCatalog<E>(options.events, options.upcasters),
    route: options.route,
    projections: options.projections ?? [],
    refusals: options.refusals,
    // Appends to distinct streams outside a transaction share a statement when the pool is busy.
    combiner: batched((inputs) => appendStatement(db, inputs), {
      limit: poolSize,
      key: (input) => input.streamId,
    }),
  };
  const root = new Operations<E, DB>(parts, db, false);

  const commitListeners: Array<() => void> = [];
  /** `write`'s result, once the listeners have heard it committed (see onCommit). */
  async function committed<T>(write: Promise<T>): Promise<T> {
    const result = await write;
    for (const listener of commitListeners) listener();
    return result;
  }

  async function inTransaction<T>(
    work: (session: Session<E, DB>) => Promise<T>,
    maxRetries: number,
    causationId?: string,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await committed(
          traceTransaction(
            () =>
              db.transaction().execute((trx) => work(new Operations<E, DB>(parts, trx, true, causationId))),
            database,
          ),
        );
      } catch (error) {
        if (!(error instanceof ConcurrencyConflict) || attempt >= maxRetries) throw error;
        await backoff(attempt);
      }
    }
  }

  async function outboxBacklog(): Promise<number> {
    const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL`.execute(
      db,
    );
    return Number(rows[0]?.n ?? 0);
  }
  const backlogGauge = observeOutboxBacklog(database, outboxBacklog);

  async function pruneInbox(olderThanMs: number): Promise<number> {
    const result = await sql`
      DELETE FROM inbox WHERE received_at < now() - make_interval(secs => ${olderThanMs / 1000})`.execute(db);
    return Number(result.numAffectedRows ?? 0);
  }
  const retentionMs = options.inboxRetentionMs ?? DEFAULT_INBOX_RETENTION_MS;
  const pruning =
    retentionMs > 0
      ? setInterval(() => {
          pruneInbox(retentionMs).catch((error: unknown) =>
            log.warn(errorFields(error), "pruning the inbox failed; trying again later"),
          );
        }, retentionMs / 10).unref()
      : undefined;

  return {
    connectionString: options.connectionString,
    db: db as unknown as Kysely<DB>,
    poolSize,
    parts,
    append: (streamId, events, appendOptions) => committed(root.append(streamId, events, appendOptions)),
    readStream: (streamId, readOptions) => root.readStream(streamId, readOptions),
    async readAll({ after = START, limit = 500 } = {}) {
      const rows = await selectAfter(db, after, limit);
      const events = rows.map((row) => toRecorded(parts.catalog, row));
      const last = events.at(-1);
      return { events, checkpoint: last ? checkpointOf(last) : after };
    },
    async handle(stream, decide, handleOptions = {}) {
      const maxRetries = handleOptions.maxRetries ?? 3;
      for (let attempt = 0; ; attempt++) {
        try {
          return await committed(root.handle(stream, decide, handleOptions));
        } catch (error) {
          if (!(error instanceof ConcurrencyConflict) || attempt >= maxRetries) throw error;
          await backoff(attempt);
        }
      }
    },
    send: (messages) => committed(root.send(messages)),
    transaction: (work, txOptions = {}) => inTransaction(work, txOptions.maxRetries ?? 3),
    async handleOnce(consumer, messageId, work, txOptions = {}) {
      return inTransaction<Once<Awaited<ReturnType<typeof work>>>>(
        async (session) => {
          const { rows } = await sql<{ recorded: boolean }>`${sql.raw(PREPARED)}
            INSERT INTO inbox (consumer, message_id) VALUES (${consumer}, ${messageId})
            ON CONFLICT DO NOTHING RETURNING true AS recorded`.execute(
            session.db as unknown as Kysely<unknown>,
          );
          if (rows.length === 0) {
            await requeueCausedBy(session.db as unknown as Kysely<EventStoreTables>, messageId);
            return { duplicate: true };
          }
          return { duplicate: false, result: await work(session) };
        },
        txOptions.maxRetries ?? 3,
        messageId,
      );
    },
    async rebuild(projection) {
      const { count } = await db.transaction().execute((trx) => replayAll(trx, parts.catalog, projection));
      return count;
    },
    outboxBacklog,
    onCommit: (listener) => commitListeners.push(listener),
    async inboxHas(consumer, messageId) {
      const { rows } = await sql`
        SELECT 1 FROM inbox WHERE consumer = ${consumer} AND message_id = ${messageId}`.execute(db);
      return rows.length > 0;
    },
    pruneInbox,
    resendCausedBy: (messageId) => requeueCausedBy(db, messageId),
    async firstSentAt(messageId) {
      const { rows } = await sql<{ first: Date | null }>`
        SELECT min(sent_at) AS first FROM outbox WHERE message_id = ${messageId}::uuid`.execute(db);
      return rows[0]?.first ?? null;
    },
    close() {
      clearInterval(pruning);
      backlogGauge.remove();
      return db.destroy();
    },
  };
}
