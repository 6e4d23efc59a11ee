import { Header, type MessageDef, type Names, type Registry } from "@mikrom/contracts";
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
import { settlesWithin } from "./deadline.ts";
import { type Envelope, messageIdOf, type Received } from "./envelope.ts";
import { headerValue } from "./headers.ts";
import { type MaxDeliveriesWatch, watchMaxDeliveries } from "./max-deliveries.ts";
import { OTHER_TYPE, observeConsumer, recordProcess } from "./metrics.ts";
import { createPublisher, type Publisher } from "./publisher.ts";
import { pause } from "./retry.ts";
import { receivedOf, reply, type Settled, Settler } from "./settle.ts";

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
  readonly #log: Logger;
  readonly #fetches = new Set<ConsumerMessages>();
  readonly #stopSignal = new AbortController();
  readonly #watch: MaxDeliveriesWatch;
  readonly #gauges: GaugeRegistration;
  readonly #settler: Settler<D>;
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
    const publisher = options.publisher ?? createPublisher(nc);
    this.#log = options.logger ?? createLogger("mikrom.bus.consumer");
    this.#watch = watchMaxDeliveries(nc, jsm, {
      stream: this.stream,
      durable: this.durable,
      names: options.names,
      publisher,
      log: this.#log,
    });
    this.#gauges = observeConsumer(consumer, this.stream, this.durable);
    this.#settler = new Settler({
      stream: this.stream,
      durable: this.durable,
      names: options.names,
      registry: options.registry,
      handle: options.handle,
      retryDelaysMs: options.retryDelaysMs,
      maxDeliver,
      publisher,
      log: this.#log,
      stopping: this.#stopSignal.signal,
    });
  }

  start(): void {
    const concurrency = Math.max(1, this.#options.concurrency ?? 1);
    this.#workers = [this.#pull(concurrency)];
    void this.#renewPullsOnReconnect();
    this.#log.info(
      { stream: this.stream, consumer: this.durable, concurrency, max_deliver: this.#maxDeliver },
      "consumer started",
    );
  }

  /**
   * After a reconnect nats.js revives a pending pull by asking for the consumer's info, and when
   * JetStream is still starting it waits a whole pull expiry (30 s) before asking again. Ending the
   * pulls instead lets the loop issue a fresh one at once, retrying on its own short back-off.
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
   * Pulls as many messages as there are free slots, in one request, and handles them at once; pulls
   * again when the batch is in (or its request expired) and a slot is free. A replica never holds
   * more than `concurrency` messages, so nothing waits prefetched while its ack wait runs, and a
   * quiet consumer costs one pull per `concurrency` messages rather than one per message (each pull
   * is a subscription, a request and an unsubscription at the server).
   */
  async #pull(concurrency: number): Promise<void> {
    const running = new Set<Promise<void>>();
    let slotFreed: (() => void) | undefined;
    let failures = 0;
    while (!this.#stopping) {
      if (running.size >= concurrency) {
        await new Promise<void>((resolve) => {
          slotFreed = resolve;
        });
        continue;
      }
      let fetch: ConsumerMessages | undefined;
      const reconnects = this.#reconnects;
      try {
        fetch = await this.#consumer.fetch({
          max_messages: concurrency - running.size,
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
        for await (const msg of fetch) {
          const handled = this.#process(msg).finally(() => {
            running.delete(handled);
            slotFreed?.();
          });
          running.add(handled);
        }
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
    await Promise.all(running);
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
        () => this.#settler.settle(msg, received, settled),
      );
    } catch {
      // Settled and logged by the settler; the error was rethrown only to mark the span as failed.
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
