import { type GaugeRegistration, histogram, type MetricAttributes, observeGauges } from "@mikrom/telemetry";
import type { Consumer } from "@nats-io/jetstream";

/** What became of a delivery: acked, nak'ed for a later retry, or dead-lettered and terminated. */
export type Outcome = "ack" | "retry" | "dead_letter";

/** The type header of a message no registry knows (OTel's name for a value outside the known set). */
export const OTHER_TYPE = "_OTHER";

const processDuration = histogram("messaging.process.duration", {
  unit: "s",
  description: "Time to handle one delivery, from receipt to ack, nak or dead letter",
});

export interface ProcessRecord {
  readonly durable: string;
  /** The message type (Mikrom-Type), OTHER_TYPE when absent or unknown: never the subject (it holds ids). */
  readonly type: string;
  readonly outcome: Outcome;
  /** The error's class when the outcome is not ack. */
  readonly errorType?: string;
  readonly seconds: number;
}

export function recordProcess(r: ProcessRecord): void {
  const attributes: MetricAttributes = {
    "messaging.system": "nats",
    "messaging.operation.name": "process",
    "messaging.consumer.group.name": r.durable,
    "messaging.message.type": r.type,
    "mikrom.outcome": r.outcome,
  };
  if (r.errorType) attributes["error.type"] = r.errorType;
  processDuration.record(r.seconds, attributes);
}

/**
 * The durable's backlog as the server sees it, read with one consumer-info request per metric
 * collection (every OTEL_METRIC_EXPORT_INTERVAL, a minute by default). Every replica reports the same
 * durable: dashboards take the max over instances, not the sum.
 */
export function observeConsumer(consumer: Consumer, stream: string, durable: string): GaugeRegistration {
  return observeGauges(
    {
      "mikrom.consumer.pending": {
        unit: "{message}",
        description: "Messages in the stream not yet delivered to the durable consumer",
      },
      "mikrom.consumer.ack_pending": {
        unit: "{message}",
        description: "Messages delivered to the durable consumer and not yet acknowledged",
      },
      "mikrom.consumer.redelivered": {
        unit: "{message}",
        description: "Messages delivered more than once and not yet acknowledged",
      },
    },
    async (observe) => {
      const info = await consumer.info();
      const attributes = { "messaging.consumer.group.name": durable, "mikrom.stream": stream };
      observe("mikrom.consumer.pending", info.num_pending, attributes);
      observe("mikrom.consumer.ack_pending", info.num_ack_pending, attributes);
      observe("mikrom.consumer.redelivered", info.num_redelivered, attributes);
    },
  );
}

/** The class of what a handler threw, a bounded value for `error.type`. */
export function errorTypeOf(error: unknown): string {
  return error instanceof Error ? error.constructor.name : typeof error;
}
