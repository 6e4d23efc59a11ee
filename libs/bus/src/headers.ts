import { Header } from "@mikrom/contracts";
import { headers as emptyHeaders, type MsgHdrs } from "@nats-io/transport-node";

/** Headers a dead letter carries besides the original ones, so an operator can tell where it came from and why. */
export const DeadLetterHeader = {
  Reason: Header.DeadLetterReason,
  Subject: "Mikrom-Dead-Letter-Subject",
  Stream: "Mikrom-Dead-Letter-Stream",
  Sequence: "Mikrom-Dead-Letter-Sequence",
  Deliveries: "Mikrom-Dead-Letter-Deliveries",
  Consumer: "Mikrom-Dead-Letter-Consumer",
  /** The original `Nats-Msg-Id` (the dead letter has an id of its own). */
  MessageId: "Mikrom-Dead-Letter-Message-Id",
} as const;

/** Headers as nats.js takes them, or as a plain record (an outbox row's metadata, say). */
export type HeadersInit = MsgHdrs | Readonly<Record<string, string>>;

function isMsgHdrs(value: HeadersInit): value is MsgHdrs {
  return typeof (value as MsgHdrs).append === "function" && typeof (value as MsgHdrs).keys === "function";
}

/** A fresh, mutable copy: publishing injects trace headers, and the caller's object must not change under it. */
export function copyHeaders(init?: HeadersInit): MsgHdrs {
  const copy = emptyHeaders();
  if (!init) return copy;
  if (isMsgHdrs(init)) {
    for (const [key, values] of init) for (const value of values) copy.append(key, value);
  } else {
    for (const [key, value] of Object.entries(init)) copy.set(key, value);
  }
  return copy;
}

/** A header's value, or undefined: nats.js answers "" for a missing key, which must not pass for an id. */
export function headerValue(headers: MsgHdrs | undefined, key: string): string | undefined {
  const value = headers?.get(key);
  return value ? value : undefined;
}

const HEADER_VALUE_MAX = 1024;

/**
 * Makes free text (an error message, a stack) safe as a header value: a line break would end the header
 * block on the wire, and a huge value would bloat every copy of the message.
 */
export function headerSafe(text: string): string {
  const oneLine = text.replace(/\s*[\r\n]+\s*/g, " ").trim();
  return oneLine.length > HEADER_VALUE_MAX ? `${oneLine.slice(0, HEADER_VALUE_MAX - 1)}…` : oneLine;
}
