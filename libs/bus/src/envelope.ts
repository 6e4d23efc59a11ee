import { type DataOf, Header, type MessageDef, type Registry, ValidationFailed } from "@mikrom/contracts";
import { headers as emptyHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { headerValue } from "./headers.ts";

/** What a handler receives: the validated message and where it came from. One variant per definition. */
export type Envelope<D extends MessageDef = MessageDef> = D extends MessageDef
  ? {
      readonly type: D["type"];
      readonly data: DataOf<D>;
      readonly subject: string;
      /** `Mikrom-Message-Id`, else `Nats-Msg-Id`, else `<stream>:<sequence>`: the same on every copy, the key for an inbox. */
      readonly messageId: string;
      readonly correlationId: string | undefined;
      readonly causationId: string | undefined;
      readonly headers: MsgHdrs;
      /** 1 on the first delivery. */
      readonly deliveryCount: number;
      readonly streamSequence: number;
    }
  : never;

/** The parts of a received message decoding needs (a JsMsg, or a message read back from a stream). */
export interface Received {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly stream: string;
  readonly streamSequence: number;
  readonly deliveryCount: number;
}

export function messageIdOf(received: Received): string {
  return (
    headerValue(received.headers, Header.MessageId) ??
    headerValue(received.headers, Header.MsgId) ??
    `${received.stream}:${received.streamSequence}`
  );
}

/**
 * Turns a received message into a typed envelope, or throws ValidationFailed saying exactly what is
 * wrong: no type header, a schema version this code does not know, a body that is not JSON, or data
 * that does not match the definition.
 */
export function decode<D extends MessageDef>(received: Received, registry: Registry<D>): Envelope<D> {
  const type = headerValue(received.headers, Header.Type);
  if (!type)
    throw new ValidationFailed("(untyped)", [{ path: "", message: `missing ${Header.Type} header` }]);
  const def = registry.get(type);
  const version = headerValue(received.headers, Header.SchemaVersion);
  if (def && version !== undefined && version !== String(def.version)) {
    throw new ValidationFailed(type, [
      {
        path: "",
        message: `schema version ${version} is not handled here (this code knows version ${def.version})`,
      },
    ]);
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(received.data));
  } catch {
    throw new ValidationFailed(type, [{ path: "", message: "body is not valid JSON" }]);
  }
  const message = registry.parse(type, body);
  return {
    type: message.type,
    data: message.data,
    subject: received.subject,
    messageId: messageIdOf(received),
    correlationId: headerValue(received.headers, Header.CorrelationId),
    causationId: headerValue(received.headers, Header.CausationId),
    headers: received.headers ?? emptyHeaders(),
    deliveryCount: received.deliveryCount,
    streamSequence: received.streamSequence,
  } as Envelope<D>;
}
