import type { DomainEvent } from "./decider.ts";

/** Who asked for the change that an event records. */
export interface Actor {
  readonly userId?: string;
  readonly userName?: string;
}

/** Stored with every event; the outbox turns it into message headers. */
export interface EventMetadata {
  /** The request that started the flow (the gateway's request id). */
  readonly correlationId?: string;
  /** The message whose handling appended this event. */
  readonly causationId?: string;
  readonly actor?: Actor;
  /** W3C trace context, baggage and B3 of the operation that appended the event (lower-case keys). */
  readonly trace?: Readonly<Record<string, string>>;
}

/** What a caller may set on the metadata; the trace is always taken from the active context. */
export type MetadataInput = Omit<EventMetadata, "trace">;

/** An event to append; `id` (a UUID) is minted when absent and becomes the message id (`Nats-Msg-Id`). */
export type NewEvent<E extends DomainEvent> = E & { readonly id?: string };

/** Where an event sits in the store. */
export interface EventPosition {
  readonly id: string;
  readonly streamId: string;
  /** 1 for the first event of a stream, without gaps. */
  readonly streamVersion: number;
  readonly globalPosition: bigint;
  /**
   * The transaction id (xid8) global readers order by: the appending transaction's, or the stream's
   * previous event's when that is larger, so a stream's events never sort out of order.
   */
  readonly txId: bigint;
}

/** An event as read back: the domain event (upcast to its current schema version) and where and how it was recorded. */
export type RecordedEvent<E extends DomainEvent = DomainEvent> = E extends unknown
  ? E &
      EventPosition & {
        readonly metadata: EventMetadata;
        readonly recordedAt: Date;
      }
  : never;

/**
 * A point in the global order, for readers that poll all events (async projections). Positions are
 * handed out before commit, so the order is (transaction id, position) and readers stay below the
 * oldest running transaction: a late commit can never land behind a checkpoint.
 */
export interface Checkpoint {
  readonly txId: bigint;
  readonly position: bigint;
}

export const START: Checkpoint = Object.freeze({ txId: 0n, position: 0n });

export function checkpointOf(event: EventPosition): Checkpoint {
  return { txId: event.txId, position: event.globalPosition };
}
