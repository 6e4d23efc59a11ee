/**
 * Header names on every NATS message. nats.js matches header keys exactly, so trace headers are
 * written and read in lower case (as W3C and B3 spell them); the Mikrom ones always as below.
 */
export const Header = {
  TraceParent: "traceparent",
  TraceState: "tracestate",
  B3: "b3",
  Baggage: "baggage",
  /** JetStream's de-duplication id: the message id, or, on a message sent again on purpose, one of its own. */
  MsgId: "Nats-Msg-Id",
  /** The message's own id, the same on every copy: a receiver's inbox key. */
  MessageId: "Mikrom-Message-Id",
  /**
   * Set (a count) on a message sent again on purpose, by a sender that saw no answer or a receiver
   * answering again: JetStream's duplicate window must not drop it while the first copy is stored,
   * so it goes with a `Nats-Msg-Id` of its own; the receiver's inbox, keyed by the message id, drops it.
   */
  Resend: "Mikrom-Resend",
  Type: "Mikrom-Type",
  SchemaVersion: "Mikrom-Schema-Version",
  CorrelationId: "Mikrom-Correlation-Id",
  CausationId: "Mikrom-Causation-Id",
  /** When the message was written with what caused it (an event's recorded_at), ISO 8601. */
  RecordedAt: "Mikrom-Recorded-At",
  ContentType: "Content-Type",
  DeadLetterReason: "Mikrom-Dead-Letter-Reason",
} as const;

export type HeaderName = (typeof Header)[keyof typeof Header];
