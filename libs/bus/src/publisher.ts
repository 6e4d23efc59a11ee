import { randomUUID } from "node:crypto";
import { type DataOf, Header, type MessageDef, parse } from "@mikrom/contracts";
import { createLogger, errorFields, type Logger, tracePublish } from "@mikrom/telemetry";
import { jetstream, type PubAck } from "@nats-io/jetstream";
import { headers as emptyHeaders, type NatsConnection } from "@nats-io/transport-node";
import { copyHeaders, type HeadersInit, headerValue } from "./headers.ts";
import { pause } from "./retry.ts";
import { isTransient } from "./unavailable.ts";

export interface PublishOptions {
  /**
   * The message id (`Mikrom-Message-Id`), and its `Nats-Msg-Id`: JetStream drops a second message with
   * the same id inside the duplicate window, unless the headers mark it sent again (`Mikrom-Resend`).
   */
  msgId: string;
  headers?: HeadersInit;
  /** Wait for one ack this long (default 5 s). */
  timeoutMs?: number;
  /** Keep retrying a transient failure (server restarting, JetStream recovering) this long (default 30 s). */
  retryForMs?: number;
}

export interface MessageMeta {
  /** Default: a fresh UUID. Pass the command or event id so that a re-send is dropped as a duplicate. */
  messageId?: string;
  /** The request that started the work; default: this message's own id (it starts the work). */
  correlationId?: string;
  /** The message that caused this one. */
  causationId?: string;
  headers?: HeadersInit;
  timeoutMs?: number;
  retryForMs?: number;
}

export type Sent = PubAck & { readonly messageId: string };

export interface Publisher {
  /** Publishes raw bytes, traced, and resolves with JetStream's ack (the outbox relay's publish function). */
  publish(subject: string, data: Uint8Array | string, options: PublishOptions): Promise<PubAck>;
  /** Validates `data` against its definition, sets the Mikrom headers, publishes it as JSON. */
  send<D extends MessageDef>(def: D, subject: string, data: DataOf<D>, meta?: MessageMeta): Promise<Sent>;
}

/** The ids to carry on a message sent because of another one. */
export function causedBy(cause: { messageId: string; correlationId?: string | undefined }): {
  correlationId: string;
  causationId: string;
} {
  return { correlationId: cause.correlationId ?? cause.messageId, causationId: cause.messageId };
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_RETRY_FOR_MS = 30_000;

export function createPublisher(nc: NatsConnection, options: { logger?: Logger } = {}): Publisher {
  const js = jetstream(nc);
  const log = options.logger ?? createLogger("mikrom.bus.publish");

  async function publish(subject: string, data: Uint8Array | string, opts: PublishOptions): Promise<PubAck> {
    const headers = copyHeaders(opts.headers);
    headers.set(Header.MessageId, opts.msgId);
    const resend = headerValue(headers, Header.Resend);
    const msgID = resend === undefined ? opts.msgId : `${opts.msgId}:resend:${resend}`;
    headers.set(Header.MsgId, msgID);
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = performance.now() + (opts.retryForMs ?? DEFAULT_RETRY_FOR_MS);
    return tracePublish({ subject, messageId: opts.msgId, headers }, async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await js.publish(subject, data, { msgID, headers, timeout });
        } catch (error) {
          const wait = Math.min(100 * 2 ** (attempt - 1), 2_000);
          if (!isTransient(error) || performance.now() + wait > deadline) throw error;
          // The same msgId on every attempt: if an earlier one was stored after all, this one is a duplicate.
          log.warn(
            { subject, message_id: opts.msgId, attempt, ...errorFields(error) },
            "publish failed, retrying",
          );
          await pause(wait);
        }
      }
    });
  }

  async function send<D extends MessageDef>(
    def: D,
    subject: string,
    data: DataOf<D>,
    meta: MessageMeta = {},
  ): Promise<Sent> {
    const valid = parse(def, data);
    const messageId = meta.messageId ?? randomUUID();
    const headers = copyHeaders(meta.headers);
    headers.set(Header.Type, def.type);
    headers.set(Header.SchemaVersion, String(def.version));
    headers.set(Header.CorrelationId, meta.correlationId ?? messageId);
    if (meta.causationId) headers.set(Header.CausationId, meta.causationId);
    headers.set(Header.ContentType, "application/json");
    const ack = await publish(subject, JSON.stringify(valid), {
      msgId: messageId,
      headers,
      timeoutMs: meta.timeoutMs,
      retryForMs: meta.retryForMs,
    });
    return { ...ack, messageId };
  }

  return { publish, send };
}

/**
 * Validates and publishes a message on core NATS: no stream keeps it and nothing acknowledges it. For
 * news the next message supersedes (a heartbeat), where a lost one costs nothing and a stored one
 * would cost every receiver a pull and an ack. While the connection is away nats.js buffers it.
 */
export function announce<D extends MessageDef>(
  nc: NatsConnection,
  def: D,
  subject: string,
  data: DataOf<D>,
): void {
  const headers = emptyHeaders();
  headers.set(Header.Type, def.type);
  headers.set(Header.SchemaVersion, String(def.version));
  headers.set(Header.ContentType, "application/json");
  nc.publish(subject, JSON.stringify(parse(def, data)), { headers });
}
