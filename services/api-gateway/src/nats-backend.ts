import { callQuery, createPublisher, type Publisher, QueryFailed, querySpec } from "@mikrom/bus";
import {
  Header,
  type Names,
  names,
  type QueryDef,
  type QueryReply,
  type RequestOf,
  type ResponseOf,
} from "@mikrom/contracts";
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type Backend,
  BackendUnavailable,
  type EventFeed,
  type FeedEvent,
  type ObservedEvent,
  type OutgoingCommand,
} from "./backend.ts";
import { EventHub, type EventReader } from "./event-hub.ts";

/** The contexts whose events answer the gateway's commands. */
const COMMAND_CONTEXTS = ["vm", "ippool"] as const;
/** How many recent message ids an event feed keeps to drop an event sent again (about 0.5 MB). */
const FEED_SEEN_IDS = 10_000;

/**
 * The Backend over NATS: commands go through the bus publisher (validated, traced, Mikrom headers,
 * retried while transient) as JetStream publishes with `Nats-Msg-Id`; one core subscription per
 * command context sees every event, and hands those that name their cause to the listeners.
 * Queries go through the bus's `callQuery`; its QueryFailed comes back as the QueryReply error the
 * routes map to HTTP statuses.
 */
export class NatsBackend implements Backend {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #names: Names;
  readonly #publisher: Publisher;
  readonly #listeners = new Set<(event: ObservedEvent) => void>();
  /** One per context: every event stream of this gateway shares its reader. */
  readonly #hubs = new Map<string, EventHub>();

  private constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, namespace: string) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#names = names(namespace);
    this.#publisher = createPublisher(nc);
    for (const context of COMMAND_CONTEXTS) {
      nc.subscribe(this.#names.eventsOf(context), {
        callback: (error, m) => {
          const causationId = m?.headers?.get(Header.CausationId);
          if (error || !causationId || this.#listeners.size === 0) return;
          let data: unknown;
          try {
            data = m.json();
          } catch {
            return;
          }
          const type = m.headers?.get(Header.Type) || (m.subject.split(".").pop() ?? "");
          const recordedAt = m.headers?.get(Header.RecordedAt) || undefined;
          const event = { causationId, type, data, ...(recordedAt && { recordedAt }) };
          for (const listener of this.#listeners) listener(event);
        },
      });
    }
  }

  /**
   * Asks JetStream nothing: right after a NATS restart it answers "temporarily unavailable" for a
   * while, and the gateway must start anyway (requests meanwhile get 503; readiness says so).
   */
  static async create(nc: NatsConnection, namespace: string): Promise<NatsBackend> {
    return new NatsBackend(nc, jetstream(nc), await jetstreamManager(nc, { checkAPI: false }), namespace);
  }

  async publish(command: OutgoingCommand): Promise<void> {
    try {
      await this.#publisher.send(
        command.def,
        this.#names.command(command.service, command.verb),
        command.data,
        {
          messageId: command.commandId,
          correlationId: command.correlationId,
          causationId: command.correlationId,
          timeoutMs: command.timeoutMs,
          // Within the request's own bound: a retry after it would answer a client that has gone.
          retryForMs: command.timeoutMs,
          ...(command.resend !== undefined && { headers: { [Header.Resend]: String(command.resend) } }),
        },
      );
    } catch (error) {
      throw new BackendUnavailable(`could not publish ${command.def.type}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  onEvent(listener: (event: ObservedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async query<Q extends QueryDef>(
    service: string,
    def: Q,
    request: RequestOf<Q>,
    timeoutMs = 5_000,
  ): Promise<QueryReply<ResponseOf<Q>>> {
    try {
      const spec = querySpec(this.#names, service, def);
      return { ok: true, data: await callQuery(this.#nc, spec, request, { timeoutMs }) };
    } catch (error) {
      if (error instanceof QueryFailed)
        return { ok: false, error: { code: error.code, message: error.message } };
      // The connection is closed or draining: the owning service is out of reach as far as we can tell.
      return { ok: false, error: { code: "unavailable", message: (error as Error).message } };
    }
  }

  events(options: { context: string; afterSequence?: number }): Promise<EventFeed> {
    let hub = this.#hubs.get(options.context);
    if (!hub) {
      hub = new EventHub((after) => this.#read(options.context, after));
      this.#hubs.set(options.context, hub);
    }
    return hub.feed(options.afterSequence);
  }

  /** An ordered consumer on one context's events, deleted when stopped. */
  async #read(context: string, afterSequence?: number): Promise<EventReader> {
    const unavailable = (error: unknown): never => {
      throw new BackendUnavailable(`events stream unavailable: ${(error as Error).message}`, {
        cause: error,
      });
    };
    // "From now" is a start sequence too: an ordered consumer opened with DeliverPolicy.New that is
    // reset before its first message (a NATS restart) would be made again from the stream's start.
    const after =
      afterSequence ??
      (await this.#jsm.streams.info(this.#names.streams.events).catch(unavailable)).state.last_seq;
    const consumer = await this.#js.consumers
      .get(this.#names.streams.events, {
        filter_subjects: this.#names.eventsOf(context),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: after + 1,
      })
      .catch(unavailable);
    let messages: Awaited<ReturnType<typeof consumer.consume>>;
    let pending: number;
    try {
      pending = (await consumer.info()).num_pending;
      messages = await consumer.consume({ max_messages: 256 });
    } catch (error) {
      await consumer.delete().catch(() => undefined);
      return unavailable(error);
    }
    let stopped = false;
    // An ordered consumer is ephemeral, but the server keeps it for its inactivity threshold after
    // the last pull: deleting it when the read ends leaves none behind.
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      await messages.close().catch(() => undefined);
      await consumer.delete().catch(() => undefined);
    };
    const names = this.#names;
    // An event sent again on purpose (a resend after a fault) is stored twice, under one message
    // id: a client is shown it once. Ids are kept for the last FEED_SEEN_IDS events read.
    const seen = new Set<string>();
    async function* iterate(): AsyncGenerator<FeedEvent> {
      for await (const m of messages) {
        const id = m.headers?.get(Header.MessageId);
        if (id) {
          if (seen.has(id)) continue;
          seen.add(id);
          if (seen.size > FEED_SEEN_IDS) seen.delete(seen.values().next().value as string);
        }
        const parts = names.eventParts(m.subject);
        let data: Record<string, unknown>;
        try {
          data = m.json<Record<string, unknown>>();
        } catch {
          continue;
        }
        yield {
          seq: m.seq,
          subject: m.subject,
          type: m.headers?.get(Header.Type) || (parts?.type ?? ""),
          entityId: parts?.entityId ?? "",
          data,
          time: m.timestamp,
          ...(id && { messageId: id }),
        };
      }
    }
    const iterator = iterate();
    return {
      start: after,
      pending,
      stop,
      [Symbol.asyncIterator]: () => iterator,
    };
  }

  async ready(): Promise<boolean> {
    if (this.#nc.isClosed()) return false;
    await this.#jsm.streams.info(this.#names.streams.commands);
    return true;
  }
}
