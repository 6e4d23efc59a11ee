import type { Names } from "@mikrom/contracts";
import type { PubAck } from "@nats-io/jetstream";
import { messageIdOf, type Received } from "./envelope.ts";
import { copyHeaders, DeadLetterHeader, headerSafe } from "./headers.ts";
import type { Publisher } from "./publisher.ts";

export interface DeadLetter extends Received {
  /** The durable consumer that gave up on it. */
  readonly consumer: string;
  readonly reason: string;
}

/** `dlq:<stream>:<sequence>`: the same message dead-lettered twice (a retry, two replicas) is stored once. */
export function deadLetterId(stream: string, streamSequence: number): string {
  return `dlq:${stream}:${streamSequence}`;
}

/**
 * Publishes a message that will not be processed to `<ns>.dlq.<original subject>`: the original body
 * and headers, plus the reason and where it came from. Resolves once the dead-letter stream has it,
 * so the caller may then `term` the original.
 */
export function publishDeadLetter(publisher: Publisher, names: Names, letter: DeadLetter): Promise<PubAck> {
  const headers = copyHeaders(letter.headers);
  headers.set(DeadLetterHeader.Reason, headerSafe(letter.reason) || "(no reason given)");
  headers.set(DeadLetterHeader.Subject, letter.subject);
  headers.set(DeadLetterHeader.Stream, letter.stream);
  headers.set(DeadLetterHeader.Sequence, String(letter.streamSequence));
  headers.set(DeadLetterHeader.Deliveries, String(letter.deliveryCount));
  headers.set(DeadLetterHeader.Consumer, letter.consumer);
  headers.set(DeadLetterHeader.MessageId, messageIdOf(letter));
  return publisher.publish(names.deadLetter(letter.subject), letter.data, {
    msgId: deadLetterId(letter.stream, letter.streamSequence),
    headers,
  });
}
