import { randomUUID } from "node:crypto";
import { CommandRejected, parse } from "@mikrom/contracts";
import { traceTransaction } from "@mikrom/telemetry";
import type { Kysely } from "kysely";
import { type AppendInput, type AppendOutcome, appendOne, appendThrough, insertOutbox } from "./append.ts";
import type { EventCatalog } from "./catalog.ts";
import {
  type Decided,
  type Decision,
  type DomainEvent,
  eventsOf,
  isRefusal,
  type Refusal,
  type Stream,
} from "./decider.ts";
import type { EventMetadata, MetadataInput, NewEvent, RecordedEvent } from "./event.ts";
import { currentMetadata } from "./metadata.ts";
import { messageHeaders, type OutboxRow, type OutgoingMessage, type Router } from "./outbox.ts";
import type { Projection } from "./projections.ts";
import { selectStream, toRecorded } from "./read.ts";
import type { EventStoreTables } from "./schema.ts";

export interface AppendOptions {
  /** The stream's current version as the caller last read it; 0 means the stream must not exist yet. */
  readonly expectedVersion: number;
  readonly metadata?: MetadataInput;
  /** Messages other than the events (commands to other services) to send in the same transaction. */
  readonly messages?: readonly OutgoingMessage[];
}

export interface AppendResult<E extends DomainEvent> {
  /** The stream's version after the append. */
  readonly nextVersion: number;
  readonly events: RecordedEvent<E>[];
}

export interface StreamEvents<E extends DomainEvent> {
  /** The version of the last event read (0 for a stream that does not exist). */
  readonly version: number;
  readonly events: RecordedEvent<E>[];
}

export interface HandleOptions<D = unknown> {
  readonly metadata?: MetadataInput;
  /** Reloads and decides again this many times after a ConcurrencyConflict (default 3); only outside a transaction. */
  readonly maxRetries?: number;
  /** The command decided: a refusal is then answered as CommandRejected, where the store routes refusals. */
  readonly command?: string;
  /** Messages (commands to other services) the decision sends with its events, in the same commit. */
  readonly messages?: (decided: D) => readonly OutgoingMessage[];
}

export type HandleResult<S, E extends DomainEvent, D = readonly E[]> =
  | {
      readonly outcome: "accepted";
      readonly decided: D;
      /** The events appended; none when the decider found nothing to do. */
      readonly events: RecordedEvent<E>[];
      /** The stream's events before this decision, and the state they fold into. */
      readonly history: RecordedEvent<E>[];
      readonly before: S;
      readonly state: S;
      readonly version: number;
    }
  | { readonly outcome: "refused"; readonly refusal: Refusal; readonly state: S; readonly version: number };

/** Where the CommandRejected answering a refusal on a stream goes, and the entity it names. */
export type RefusalRouter = (streamId: string) => { readonly subject: string; readonly entityId: string };

/** What both a Session and the EventStore offer on streams, declared once for both. */
export interface StreamOperations<E extends DomainEvent> {
  append(streamId: string, events: readonly NewEvent<E>[], options: AppendOptions): Promise<AppendResult<E>>;
  readStream(streamId: string, options?: { afterVersion?: number }): Promise<StreamEvents<E>>;
  /**
   * The one command path: load the stream, fold, run the pure `decide`, append with the expected
   * version and the decision's messages, or answer a refusal. In a Session a conflict aborts the
   * transaction and the unit of work is retried whole; the store's handle runs in a transaction of
   * its own and, on a conflict, reloads and decides again.
   */
  handle<S, D extends Decided<E> = readonly E[]>(
    stream: Stream<S, E>,
    decide: (state: S) => Decision<E, D>,
    options?: HandleOptions<D>,
  ): Promise<HandleResult<S, E, D>>;
  send(messages: readonly OutgoingMessage[]): Promise<void>;
}

/** What a unit of work can do inside one transaction. */
export interface Session<E extends DomainEvent, DB> extends StreamOperations<E> {
  /** The transaction, for the service's own tables. */
  readonly db: Kysely<DB>;
}

/** What every operation of one store shares. */
export interface StoreParts<E extends DomainEvent, DB> {
  readonly catalog: EventCatalog<E>;
  readonly route: Router<E> | undefined;
  readonly projections: readonly Projection<E, DB>[];
  readonly refusals: RefusalRouter | undefined;
  /** Group commit for appends outside a transaction. */
  readonly combiner?: (input: AppendInput) => Promise<AppendOutcome>;
  /** The database's name, for its transactions' spans. */
  readonly database?: string;
}

function outgoingRows(messages: readonly OutgoingMessage[], metadata: EventMetadata): OutboxRow[] {
  return messages.map((m) => {
    const id = m.id ?? randomUUID();
    return {
      messageId: id,
      subject: m.subject,
      data: JSON.stringify(m.data),
      headers: JSON.stringify(messageHeaders(id, m.type, m.schemaVersion, metadata, m.headers)),
    };
  });
}

/**
 * The store's operations bound to one executor: the pool (each append its own transaction) or a
 * transaction. Every operation uses exactly one connection at a time, so callers beyond the pool size
 * queue for a connection instead of deadlocking on a second one.
 */
export class Operations<E extends DomainEvent, DB> implements Session<E, DB> {
  readonly #parts: StoreParts<E, DB>;
  readonly #executor: Kysely<EventStoreTables>;
  readonly #inTransaction: boolean;
  readonly #causationId: string | undefined;

  constructor(
    parts: StoreParts<E, DB>,
    executor: Kysely<EventStoreTables>,
    inTransaction: boolean,
    causationId?: string,
  ) {
    this.#parts = parts;
    this.#executor = executor;
    this.#inTransaction = inTransaction;
    this.#causationId = causationId;
  }

  get db(): Kysely<DB> {
    return this.#executor as unknown as Kysely<DB>;
  }

  async append(
    streamId: string,
    events: readonly NewEvent<E>[],
    options: AppendOptions,
  ): Promise<AppendResult<E>> {
    const { catalog, route, projections } = this.#parts;
    if (events.length === 0) {
      // Nothing to version: only the messages, if any.
      await this.send(options.messages ?? []);
      return { nextVersion: options.expectedVersion, events: [] };
    }
    if (projections.length > 0 && !this.#inTransaction) {
      // Inline projections commit with the events: give the append a transaction of its own.
      return traceTransaction(
        () =>
          this.#executor
            .transaction()
            .execute((trx) =>
              new Operations(this.#parts, trx, true, this.#causationId).append(streamId, events, options),
            ),
        this.#parts.database,
      );
    }

    const { expectedVersion } = options;
    const metadata = currentMetadata(options.metadata, this.#causationId);
    const ids = events.map((e) => e.id ?? randomUUID());
    const encoded = events.map((e) => catalog.encode(e));
    const json = encoded.map((e) => JSON.stringify(e.data));
    const outbox: OutboxRow[] = [];
    encoded.forEach((e, i) => {
      const id = ids[i]!;
      const to = route?.({
        ...events[i]!,
        data: e.data,
        id,
        streamId,
        streamVersion: expectedVersion + i + 1,
      });
      if (!to) return;
      const headers = messageHeaders(id, e.type, e.schemaVersion, metadata, to.headers);
      outbox.push({ messageId: id, subject: to.subject, data: json[i]!, headers: JSON.stringify(headers) });
    });
    outbox.push(...outgoingRows(options.messages ?? [], metadata));

    const input: AppendInput = {
      streamId,
      expectedVersion,
      ids,
      events: encoded.map((e, i) => ({ type: e.type, schemaVersion: e.schemaVersion, json: json[i]! })),
      metadata: JSON.stringify(metadata),
      outbox,
      carrier: JSON.stringify(metadata.trace ?? {}),
    };
    const { combiner } = this.#parts;
    const written =
      combiner && !this.#inTransaction
        ? await appendThrough(input, () => combiner(input))
        : await appendOne(this.#executor, input);
    const recorded = encoded.map(
      (e, i) =>
        ({
          type: e.type,
          data: e.data,
          id: ids[i]!,
          streamId,
          streamVersion: expectedVersion + i + 1,
          globalPosition: written.positions[i]!,
          txId: written.txId,
          metadata,
          recordedAt: written.recordedAt,
        }) as RecordedEvent<E>,
    );
    for (const projection of projections) await projection.apply(this.db, recorded);
    return { nextVersion: expectedVersion + events.length, events: recorded };
  }

  async readStream(streamId: string, options: { afterVersion?: number } = {}): Promise<StreamEvents<E>> {
    const afterVersion = options.afterVersion ?? 0;
    const rows = await selectStream(this.#executor, streamId, afterVersion);
    const events = rows.map((row) => toRecorded(this.#parts.catalog, row));
    return { version: events.at(-1)?.streamVersion ?? afterVersion, events };
  }

  async handle<S, D extends Decided<E> = readonly E[]>(
    stream: Stream<S, E>,
    decide: (state: S) => Decision<E, D>,
    options: HandleOptions<D> = {},
  ): Promise<HandleResult<S, E, D>> {
    const { version, events: history } = await this.readStream(stream.id);
    let state = stream.initialState;
    for (const event of history) state = stream.evolve(state, event);
    const before = state;
    const decided = decide(state);
    if (isRefusal(decided)) {
      const to = options.command !== undefined ? this.#parts.refusals?.(stream.id) : undefined;
      if (to) await this.send([rejection(to.subject, to.entityId, options.command!, decided)]);
      return { outcome: "refused", refusal: decided, state, version };
    }
    const appended = await this.append(stream.id, eventsOf(decided), {
      expectedVersion: version,
      ...(options.metadata && { metadata: options.metadata }),
      ...(options.messages && { messages: options.messages(decided) }),
    });
    for (const event of appended.events) state = stream.evolve(state, event);
    return {
      outcome: "accepted",
      decided,
      events: appended.events,
      history,
      before,
      state,
      version: appended.nextVersion,
    };
  }

  async send(messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const metadata = currentMetadata(undefined, this.#causationId);
    await insertOutbox(
      this.#executor,
      outgoingRows(messages, metadata),
      JSON.stringify(metadata.trace ?? {}),
    );
  }
}

/** A refusal as every service answers it: CommandRejected, validated on the way out as on receipt. */
function rejection(subject: string, entityId: string, command: string, refusal: Refusal): OutgoingMessage {
  const data = parse(CommandRejected, { entityId, command, code: refusal.code, reason: refusal.reason });
  return { subject, type: CommandRejected.type, schemaVersion: CommandRejected.version, data };
}
