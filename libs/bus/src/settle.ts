import { type MessageDef, type Names, type Registry, ValidationFailed } from "@mikrom/contracts";
import { errorFields, type Logger } from "@mikrom/telemetry";
import type { JsMsg } from "@nats-io/jetstream";
import { publishDeadLetter } from "./dead-letter.ts";
import { decode, type Envelope, messageIdOf, type Received } from "./envelope.ts";
import { describeError, PermanentFailure } from "./errors.ts";
import { errorTypeOf, type Outcome } from "./metrics.ts";
import type { Publisher } from "./publisher.ts";
import { DEFAULT_RETRY_DELAYS_MS, nakDelayMs, pause } from "./retry.ts";
import { isUnavailable } from "./unavailable.ts";

/*
 * One delivery's fate, apart from the pulling around it (consumer.ts): decode, run the handler
 * (waiting out a dependency that is away), then ack, nak for a later retry, or dead-letter and
 * terminate.
 */

/** How settle() left a delivery (for the handling-duration histogram). */
export interface Settled {
  outcome: Outcome;
  errorType?: string;
}

export interface SettlerOptions<D extends MessageDef> {
  readonly stream: string;
  readonly durable: string;
  readonly names: Names;
  readonly registry: Registry<D>;
  readonly handle: (message: Envelope<D>) => Promise<void>;
  readonly retryDelaysMs?: readonly number[] | undefined;
  readonly maxDeliver: number;
  readonly publisher: Publisher;
  readonly log: Logger;
  /** Aborted by stop(): ends a wait for a dependency (the message is then redelivered later). */
  readonly stopping: AbortSignal;
}

export class Settler<D extends MessageDef> {
  readonly #o: SettlerOptions<D>;

  constructor(options: SettlerOptions<D>) {
    this.#o = options;
  }

  /**
   * Decides the message's fate: ack, retry later (nak with a delay), or dead-letter and terminate;
   * `settled` says which. Rethrows the handler's error after settling, to mark the span as failed.
   */
  async settle(msg: JsMsg, received: Received, settled: Settled): Promise<void> {
    const { maxDeliver, log } = this.#o;
    let envelope: Envelope<D>;
    try {
      envelope = decode(received, this.#o.registry);
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
      } else if (received.deliveryCount >= maxDeliver) {
        const reason = `failed on all ${maxDeliver} deliveries; last error: ${describeError(error)}`;
        settled.outcome = await this.#giveUp(msg, received, reason);
      } else {
        const delayMs = this.#retryDelayMs(received);
        settled.outcome = "retry";
        reply(msg, "nak", delayMs);
        log.warn(
          { ...this.#fields(received), retry_in_ms: delayMs, ...errorFields(error) },
          "handler failed, will retry",
        );
      }
      throw error;
    }
    reply(msg, "ack");
    log.debug(this.#fields(received), "message handled");
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
        return await this.#o.handle(envelope);
      } catch (error) {
        if (!isUnavailable(error) || this.#o.stopping.aborted) throw error;
        const waitMs = Math.min(250 * 2 ** (attempt - 1), 5_000);
        if (attempt === 1 || attempt % 10 === 0)
          this.#o.log.warn(
            { ...this.#fields(received), attempt, retry_in_ms: waitMs, ...errorFields(error) },
            "handler waits for a dependency that is away",
          );
        await pause(waitMs, this.#o.stopping);
      }
    }
  }

  /** Dead-letters the message, then terminates it; if the dead letter cannot be written, retries later. */
  async #giveUp(msg: JsMsg, received: Received, reason: string): Promise<Outcome> {
    try {
      await publishDeadLetter(this.#o.publisher, this.#o.names, {
        ...received,
        consumer: this.#o.durable,
        reason,
      });
    } catch (error) {
      // On its last delivery the server then stops delivering it, and the max-deliveries watch takes over.
      reply(msg, "nak", this.#retryDelayMs(received));
      this.#o.log.error(
        { ...this.#fields(received), reason, ...errorFields(error) },
        "could not dead-letter, will retry",
      );
      return "retry";
    }
    // No reason passed: nats-server 2.9 does not know `+TERM <reason>` and would redeliver the message.
    reply(msg, "term");
    this.#o.log.error({ ...this.#fields(received), reason }, "message dead-lettered");
    return "dead_letter";
  }

  #retryDelayMs(received: Received): number {
    return nakDelayMs(received.deliveryCount, this.#o.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS);
  }

  #fields(received: Received): Record<string, unknown> {
    return {
      stream: this.#o.stream,
      consumer: this.#o.durable,
      subject: received.subject,
      message_id: messageIdOf(received),
      stream_seq: received.streamSequence,
      delivery_count: received.deliveryCount,
    };
  }
}

/**
 * Acks and friends are plain publishes: on a closed connection they throw. The message is then
 * redelivered after its ack wait, which is the right outcome, so the throw must not escape (from a
 * timer it would end the process).
 */
export function reply(msg: JsMsg, kind: "ack" | "nak" | "term" | "working", delayMs?: number): void {
  try {
    if (kind === "nak") msg.nak(delayMs);
    else msg[kind]();
  } catch {
    // connection closed or draining: see above
  }
}

export function receivedOf(msg: JsMsg): Received {
  return {
    subject: msg.subject,
    data: msg.data,
    headers: msg.headers,
    stream: msg.info.stream,
    streamSequence: msg.info.streamSequence,
    deliveryCount: msg.info.deliveryCount,
  };
}
