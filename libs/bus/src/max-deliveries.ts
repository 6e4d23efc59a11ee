import type { Names } from "@mikrom/contracts";
import { errorFields, type Logger, traceHandle } from "@mikrom/telemetry";
import { JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { z } from "zod";
import { publishDeadLetter } from "./dead-letter.ts";
import { messageIdOf } from "./envelope.ts";
import type { Publisher } from "./publisher.ts";

/** nats-server's io.nats.jetstream.advisory.v1.max_deliver, the fields used here. */
const MaxDeliverAdvisory = z.object({
  stream: z.string(),
  consumer: z.string(),
  stream_seq: z.int(),
  deliveries: z.int(),
});

export interface MaxDeliveriesWatch {
  /** Stops taking advisories and waits for the ones being handled. */
  stop(): Promise<void>;
}

/**
 * A message whose every delivery timed out (the handler hung, or its process died each time) is never
 * seen failing by a handler, so no handler dead-letters it: the server just stops delivering it and
 * says so in an advisory. This reads the message back from the stream and dead-letters it, so that
 * nothing is dropped silently. A queue group makes one replica do it; the dead letter's id makes a
 * second attempt harmless.
 */
export function watchMaxDeliveries(
  nc: NatsConnection,
  jsm: JetStreamManager,
  opts: { stream: string; durable: string; names: Names; publisher: Publisher; log: Logger },
): MaxDeliveriesWatch {
  const { stream, durable, names, publisher, log } = opts;
  const inFlight = new Set<Promise<void>>();
  const sub: Subscription = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`, {
    queue: `${durable}-max-deliveries`,
    callback: (error, msg) => {
      if (error) return log.error(errorFields(error), "max-deliveries advisory subscription failed");
      const parsed = MaxDeliverAdvisory.safeParse(safeJson(msg.data));
      if (!parsed.success)
        return log.warn({ subject: msg.subject }, "ignoring a malformed max-deliveries advisory");
      const work = deadLetterExhausted(parsed.data.stream_seq, parsed.data.deliveries).finally(() =>
        inFlight.delete(work),
      );
      inFlight.add(work);
    },
  });

  async function deadLetterExhausted(seq: number, deliveries: number): Promise<void> {
    try {
      const stored = await jsm.streams.getMessage(stream, { seq });
      if (!stored) return;
      const received = {
        subject: stored.subject,
        data: stored.data,
        headers: stored.header,
        stream,
        streamSequence: seq,
        deliveryCount: deliveries,
      };
      const reason = `no ack after ${deliveries} deliveries: each one outlived its ack wait (the handler hung, or its process stopped)`;
      await traceHandle(
        {
          subject: stored.subject,
          messageId: messageIdOf(received),
          consumerGroup: durable,
          headers: stored.header,
          deliveryCount: deliveries,
        },
        () => publishDeadLetter(publisher, names, { ...received, consumer: durable, reason }),
      );
      log.error(
        {
          stream,
          consumer: durable,
          subject: stored.subject,
          stream_seq: seq,
          delivery_count: deliveries,
          reason,
        },
        "message dead-lettered after its deliveries ran out",
      );
    } catch (error) {
      if (error instanceof JetStreamApiError && error.status === 404) return; // gone already (acked, purged)
      log.error(
        { stream, consumer: durable, stream_seq: seq, ...errorFields(error) },
        "could not dead-letter an exhausted message",
      );
    }
  }

  return {
    async stop() {
      sub.unsubscribe();
      await Promise.all(inFlight);
    },
  };
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
