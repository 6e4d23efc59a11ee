import { Header } from "@mikrom/contracts";
import type { DomainEvent } from "./decider.ts";
import type { EventMetadata } from "./event.ts";

/** Where an event is published, and any headers of its own. */
export interface Route {
  readonly subject: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An event about to be appended, as the router sees it. */
export type PendingEvent<E extends DomainEvent> = E & {
  readonly id: string;
  readonly streamId: string;
  readonly streamVersion: number;
};

/** Maps an event to its subject (and headers); `undefined` keeps the event private to the service. */
export type Router<E extends DomainEvent> = (event: PendingEvent<E>) => Route | undefined;

/** A message that is not one of the store's events (a command to another service), sent through the outbox. */
export interface OutgoingMessage {
  /** The message id (`Nats-Msg-Id`); minted when absent. Deterministic ids make a re-sent command harmless. */
  readonly id?: string;
  readonly subject: string;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** What the relay hands the publisher: one outbox row. */
export interface OutboxMessage {
  /** The outbox row. */
  readonly id: bigint;
  /** Publish with this as `Nats-Msg-Id` (msgID): JetStream drops a re-send within its duplicate window. */
  readonly messageId: string;
  readonly subject: string;
  /** The JSON payload. */
  readonly data: unknown;
  /** Mikrom headers (`Nats-Msg-Id`, `Mikrom-Type`, `Mikrom-Schema-Version`, correlation, causation, content type). */
  readonly headers: Readonly<Record<string, string>>;
  /** Trace context of the append (traceparent, tracestate, baggage, b3): publish inside it (`runInCarrier`). */
  readonly carrier: Readonly<Record<string, string>>;
  readonly createdAt: Date;
}

/** Publishes one message and resolves once JetStream has acknowledged it; rejects otherwise. */
export type Publish = (message: OutboxMessage) => Promise<void>;

/** An outbox row before insertion. */
export interface OutboxRow {
  readonly messageId: string;
  readonly subject: string;
  readonly data: string;
  readonly headers: string;
}

export function messageHeaders(
  id: string,
  type: string,
  schemaVersion: number,
  metadata: EventMetadata,
  extra: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  return {
    ...extra,
    [Header.MsgId]: id,
    [Header.Type]: type,
    [Header.SchemaVersion]: String(schemaVersion),
    ...(metadata.correlationId !== undefined && { [Header.CorrelationId]: metadata.correlationId }),
    ...(metadata.causationId !== undefined && { [Header.CausationId]: metadata.causationId }),
    [Header.ContentType]: "application/json",
  };
}
