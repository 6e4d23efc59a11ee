import { createLogger, errorFields } from "@mikrom/telemetry";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ConsumerRunner } from "./consumer.ts";
import type { QueryServer } from "./query.ts";

/**
 * Graceful stop, in order: consumers stop fetching and finish what they hold (bounded by
 * `timeoutMs`), query servers answer what they took, then the connection drains (flushes
 * everything outbound, acks included) and closes.
 */
export async function shutdown(
  nc: NatsConnection,
  parts: { consumers?: readonly ConsumerRunner[]; queries?: readonly QueryServer[]; timeoutMs?: number },
): Promise<void> {
  const log = createLogger("mikrom.bus.connection");
  const timeoutMs = parts.timeoutMs ?? 30_000;
  await Promise.all([
    ...(parts.consumers ?? []).map((c) => c.stop({ timeoutMs })),
    ...(parts.queries ?? []).map((q) => q.stop()),
  ]);
  if (nc.isClosed() || nc.isDraining()) return;
  try {
    await nc.drain();
    log.info({}, "NATS connection drained");
  } catch (error) {
    log.warn(errorFields(error), "draining the NATS connection failed");
  }
}
