import { Header, type MessageDef, type Names, type Registry, ValidationFailed } from "@mikrom/contracts";
import {
  createLogger,
  errorFields,
  type GaugeRegistration,
  type Logger,
  traceHandle,
} from "@mikrom/telemetry";
import {
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { millis, type NatsConnection } from "@nats-io/transport-node";
import { publishDeadLetter } from "./dead-letter.ts";
import { settlesWithin } from "./deadline.ts";
import { decode, type Envelope, messageIdOf, type Received } from "./envelope.ts";
import { describeError, PermanentFailure } from "./errors.ts";
import { headerValue } from "./headers.ts";
import { type MaxDeliveriesWatch, watchMaxDeliveries } from "./max-deliveries.ts";
import { errorTypeOf, OTHER_TYPE, type Outcome, observeConsumer, recordProcess } from "./metrics.ts";
import { createPublisher, type Publisher } from "./publisher.ts";
import { DEFAULT_RETRY_DELAYS_MS, nakDelayMs, pause } from "./retry.ts";
import { isUnavailable } from "./unavailable.ts";

export interface ConsumerOptions<D extends MessageDef> {
  /** The namespace's names: dead letters go to `names.deadLetter(subject)`. */
  names: Names;
  stream: string;
  /** A durable declared with declareTopology (bounded max_deliver, explicit ack). */
  durable: string;
  /** The message types this consumer accepts; anything else is dead-lettered as invalid. */
  registry: Registry<D>;
  /** Resolve to ack; throw to retry later (PermanentFailure: dead-letter now). */
  handle: (message: Envelope<D>) => Promise<void>;
  /** Messages handled at once by this replica (default 1: slow work pulls one at a time). */
  concurrency?: number;
  /** Delay before redelivering after a handler failure, by delivery count. */
  retryDelaysMs?: readonly number[];
  /** How long one pull request waits for a message at the server (default 30 s, at least 1 s). */
  pullExpiresMs?: number;
  /** Publishes dead letters (default: one on the same connection). */
  publisher?: Publisher;
  logger?: Logger;
}

export interface ConsumerRunner {
  readonly stream: string;
  readonly durable: string;
  /** Messages being handled right now. */
  inFlight(): number;
  /**
   * Stops fetching at once, lets the handlers in flight finish and settle their messages (at most
   * `timeoutMs`, default 30 s; what is still running then is redelivered later), and flushes the acks.
   * The connection stays open: drain it once every consumer has stopped (see shutdown()).
   */
  stop(options?: { timeoutMs?: number }): Promise<void>;
}

/** Starts handling a durable pull consumer's messages; resolves once the consumer is found and checked. */
export async function startConsumer<D extends MessageDef>(
  nc: NatsConnection,
  options: ConsumerOptions<D>,
): Promise<ConsumerRunner> {
  const jsm = await jetstreamManager(nc);
  const consumer = await jetstream(nc)
    .consumers.get(options.stream, options.durable)
    .catch((error: unknown) => {
      throw new Error(
        `consumer ${options.durable} on ${options.stream} is not there (${(error as Error).message}): declare it with declareTopology first`,
        { cause: error },
      );
    });
  const { config } = await consumer.info(true);
  const maxDeliver = config.max_deliver ?? -1;
  if (maxDeliver < 1) {
    throw new Error(
      `consumer ${options.durable} on ${options.stream} has unbounded max_deliver: declare it with declareTopology`,
    );
  }
  // working() must reach the server well inside the shortest ack wait a delivery can get.
  const shortestAckWaitMs = Math.min(millis(config.ack_wait ?? 30e9), ...(config.backoff ?? []).map(millis));
  const runner = new Runner(
    nc,
    jsm,
    consumer,
    options,
    maxDeliver,
    Math.max(50, Math.floor(shortestAckWaitMs / 3)),
  );
  runner.start();
  return runner;
}

class Runner<D extends MessageDef> implements ConsumerRunner {
  readonly stream: string;
  readonly durable: string;
  readonly #nc: NatsConnection;
  readonly #consumer: Consumer;
  readonly #options: ConsumerOptions<D>;
  readonly #maxDeliver: number;
  readonly #workingEveryMs: number;
  readonly #publisher: Publisher;
  readonly #log: Logger;
  readonly #fetches = new Set<ConsumerMessages>();
  readonly #stopSignal = new AbortController();
  readonly #watch: MaxDeliveriesWatch;
  readonly #gauges: GaugeRegistration;
  #workers: Array<Promise<void>> = [];
  #inFlight = 0;
  #reconnects = 0;
  #stopped: Promise<void> | undefined;

  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    consumer: Consumer,
    options: ConsumerOptions<D>,
    maxDeliver: number,
    workingEveryMs: number,
  ) {
    this.stream = options.stream;
    this.durable = options.durable;
    this.#nc = nc;
    this.#consumer = consumer;
    this.#options = options;
    this.#maxDeliver = maxDeliver;
    this.#workingEveryMs = workingEveryMs;
    this.#publisher = options.publisher ?? createPublisher(nc);
    this.#log = options.logger ?? createLogger("mikrom.bus.consumer");
    this.#watch = watchMaxDeliveries(nc, jsm, {
      stream: this.stream,
      durable: this.durable,
      names: options.names,
      publisher: this.#publisher,
      log: this.#log,
    });
    this.#gauges = observeConsumer(consumer, this.stream, this.durable);
  }

  start(): void {
    const concurrency = Math.max(1, this.#options.concurrency ?? 1);
    this.#workers = Array.from({ length: concurrency }, () => this.#work());
    void this.#renewPullsOnReconnect();
    this.#log.info(
      { stream: this.stream, consumer: this.durable, concurrency, max_deliver: this.#maxDeliver },
      "consumer started",
    );
  }

  /**
   * After a reconnect nats.js revives a pending pull by asking for the consumer's info, and when
   * JetStream is still starting it waits a whole pull expiry (30 s) before asking again. Ending the
   * pulls instead lets each worker issue a fresh one at once, retrying on its own short back-off.
   */
  async #renewPullsOnReconnect(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (this.#stopping) return;
      if (status.type !== "reconnect") continue;
      this.#reconnects++;
      for (const fetch of this.#fetches) void fetch.close();
    }
  }

  inFlight(): number {
    return this.#inFlight;
  }

  get #stopping(): boolean {
    return this.#stopSignal.signal.aborted;
  }

  /**
   * One worker: pull one message, handle it, repeat. Pulling one at a time per worker keeps this
   * replica at `concurrency` messages even across reconnects (a batch pull is re-issued whole after a
   * reconnect), and leaves nothing prefetched for the ack wait to expire on.
   */
  async #work(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      let fetch: ConsumerMessages | undefined;
      const reconnects = this.#reconnects;
      try {
        fetch = await this.#consumer.fetch({
          max_messages: 1,
          expires: this.#options.pullExpiresMs ?? 30_000,
        });
        // stop() may have begun while fetch() resolved: then never iterate, which is what sends the pull.
        if (this.#stopping) {
          void fetch.close();
          break;
        }
        this.#fetches.add(fetch);
        // Asked for across a reconnect, after the renewal ran: renew it too, or it may wait a whole expiry.
        if (reconnects !== this.#reconnects) void fetch.close();
        for await (const msg of fetch) await this.#process(msg);
        failures = 0;
      } catch (error) {
        if (this.#stopping) break;
        failures++;
        this.#log.warn(
          { stream: this.stream, consumer: this.durable, attempt: failures, ...errorFields(error) },
          "pulling messages failed, retrying",
        );
        await pause(Math.min(250 * 2 ** (failures - 1), 5_000), this.#stopSignal.signal);
      } finally {
        if (fetch) this.#fetches.delete(fetch);
      }
    }
  }

  async #process(msg: JsMsg): Promise<void> {
    this.#inFlight++;
    const started = performance.now();
    const received = receivedOf(msg);
    const settled: Settled = { outcome: "ack" };
    // A long step keeps its delivery: in-progress acks reset the ack wait while the handler runs.
    const working = setInterval(() => reply(msg, "working"), this.#workingEveryMs);
    try {
      await traceHandle(
        {
          subject: msg.subject,
          messageId: messageIdOf(received),
          consumerGroup: this.durable,
          headers: msg.headers,
          deliveryCount: received.deliveryCount,
        },
        () => this.#settle(msg, received, settled),
      );
    } catch {
      // Settled and logged in #settle; the error was rethrown only to mark the span as failed.
    } finally {
      clearInterval(working);
      this.#inFlight--;
      recordProcess({
        durable: this.durable,
        type: this.#typeOf(received),
        outcome: settled.outcome,
        ...(settled.errorType ? { errorType: settled.errorType } : {}),
        seconds: (performance.now() - started) / 1000,
      });
    }
  }

  /** The type header when the registry knows it; anything else is one bounded value. */
  #typeOf(received: Received): string {
    const type = headerValue(received.headers, Header.Type);
    return type && this.#options.registry.get(type) ? type : OTHER_TYPE;
  }

  /**
   * Decides the message's fate: ack, retry later (nak with a delay), or dead-letter and terminate;
   * `settled` says which (for the handling-duration histogram).
   */
  async #settle(msg: JsMsg, received: Received, settled: Settled): Promise<void> {
    let envelope: Envelope<D>;
    try {
      envelope = decode(received, this.#options.registry);
    } catch (error) {
      settled.errorType = errorTypeOf(error);
      settled.outcome = await this.#giveUp(msg, received, `invalid message: ${describeError(error)}`);
      throw error;
    }
    try {
      await this.#handleWhileAvailable(envelope, received);
    } catch (error) {
      settled.errorType = errorTypeOf(error);
      if (error instanceof PermanentFailure || error instanceof ValidationFailed) {
        settled.outcome = await this.#giveUp(msg, received, describeError(error));
      } else if (received.deliveryCount >= this.#maxDeliver) {
        const reason = `failed on all ${this.#maxDeliver} deliveries; last error: ${describeError(error)}`;
        settled.outcome = await this.#giveUp(msg, received, reason);
      } else {
        const delayMs = this.#retryDelayMs(received);
        settled.outcome = "retry";
        reply(msg, "nak", delayMs);
        this.#log.warn(
          { ...this.#fields(received), retry_in_ms: delayMs, ...errorFields(error) },
          "handler failed, will retry",
        );
      }
      throw error;
    }
    reply(msg, "ack");
    this.#log.debug(this.#fields(received), "message handled");
  }

  /**
   * Runs the handler; while it fails because a server it needs is away (its database restarting),
   * it is run again here, with back-off, holding the delivery (working acks) instead of spending
   * deliveries: an outage of minutes must not dead-letter a good message. Stop ends the wait (the
   * message is redelivered later).
   */
  async #handleWhileAvailable(envelope: Envelope<D>, received: Received): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#options.handle(envelope);
      } catch (error) {
        if (!isUnavailable(error) || this.#stopping) throw error;
        const waitMs = Math.min(250 * 2 ** (attempt - 1), 5_000);
        if (attempt === 1 || attempt % 10 === 0)
          this.#log.warn(
            { ...this.#fields(received), attempt, retry_in_ms: waitMs, ...errorFields(error) },
            "handler waits for a dependency that is away",
          );
        await pause(waitMs, this.#stopSignal.signal);
      }
    }
  }

  /** Dead-letters the message, then terminates it; if the dead letter cannot be written, retries later. */
  async #giveUp(msg: JsMsg, received: Received, reason: string): Promise<Outcome> {
    try {
      await publishDeadLetter(this.#publisher, this.#options.names, {
        ...received,
        consumer: this.durable,
        reason,
      });
    } catch (error) {
      // On its last delivery the server then stops delivering it, and the max-deliveries watch takes over.
      reply(msg, "nak", this.#retryDelayMs(received));
      this.#log.error(
        { ...this.#fields(received), reason, ...errorFields(error) },
        "could not dead-letter, will retry",
      );
      return "retry";
    }
    // No reason passed: nats-server 2.9 does not know `+TERM <reason>` and would redeliver the message.
    reply(msg, "term");
    this.#log.error({ ...this.#fields(received), reason }, "message dead-lettered");
    return "dead_letter";
  }

  #retryDelayMs(received: Received): number {
    return nakDelayMs(received.deliveryCount, this.#options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS);
  }

  #fields(received: Received): Record<string, unknown> {
    return {
      stream: this.stream,
      consumer: this.durable,
      subject: received.subject,
      message_id: messageIdOf(received),
      stream_seq: received.streamSequence,
      delivery_count: received.deliveryCount,
    };
  }

  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopped ??= this.#stop(options.timeoutMs ?? 30_000);
    return this.#stopped;
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#stopSignal.abort();
    this.#gauges.remove();
    // Closing a fetch unsubscribes its inbox, and once the server has read that (the flush) it drops the
    // pending pull and sends nothing more. A message it dispatched before then reaches a closed inbox and
    // is redelivered after its ack wait: late, never lost.
    for (const fetch of this.#fetches) void fetch.close();
    if (!this.#nc.isClosed()) await this.#nc.flush().catch(() => {});
    const finished = await settlesWithin(Promise.all([...this.#workers, this.#watch.stop()]), timeoutMs);
    if (!finished) {
      this.#log.warn(
        { stream: this.stream, consumer: this.durable, in_flight: this.#inFlight, timeout_ms: timeoutMs },
        "handlers still running at the stop deadline; their messages will be redelivered",
      );
    }
    if (!this.#nc.isClosed()) await this.#nc.flush().catch(() => {});
    this.#log.info({ stream: this.stream, consumer: this.durable }, "consumer stopped");
  }
}

/**
 * Acks and friends are plain publishes: on a closed connection they throw. The message is then
 * redelivered after its ack wait, which is the right outcome, so the throw must not escape (from a
 * timer it would end the process).
 */
/** How #settle left a delivery. */
interface Settled {
  outcome: Outcome;
  errorType?: string;
}

function reply(msg: JsMsg, kind: "ack" | "nak" | "term" | "working", delayMs?: number): void {
  try {
    if (kind === "nak") msg.nak(delayMs);
    else msg[kind]();
  } catch {
    // connection closed or draining: see above
  }
}

function receivedOf(msg: JsMsg): Received {
  return {
    subject: msg.subject,
    data: msg.data,
    headers: msg.headers,
    stream: msg.info.stream,
    streamSequence: msg.info.streamSequence,
    deliveryCount: msg.info.deliveryCount,
  };
}
