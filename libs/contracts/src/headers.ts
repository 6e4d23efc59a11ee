/**
 * Header names on every NATS message. nats.js matches header keys exactly, so trace headers are
 * written and read in lower case (as W3C and B3 spell them); the Mikrom ones always as below.
 */
export const Header = {
  TraceParent: "traceparent",
  TraceState: "tracestate",
  B3: "b3",
  Baggage: "baggage",
  MsgId: "Nats-Msg-Id",
  Type: "Mikrom-Type",
  SchemaVersion: "Mikrom-Schema-Version",
  CorrelationId: "Mikrom-Correlation-Id",
  CausationId: "Mikrom-Causation-Id",
  ContentType: "Content-Type",
  DeadLetterReason: "Mikrom-Dead-Letter-Reason",
} as const;

export type HeaderName = (typeof Header)[keyof typeof Header];
