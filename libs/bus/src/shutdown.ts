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
  parts: {
    consumers?: readonly ConsumerRunner[];
    queries?: readonly QueryServer[];
    timeoutMs?: number;
    /** How long draining may wait for the server (default 5 s); then the connection is closed. */
    drainTimeoutMs?: number;
  },
): Promise<void> {
  const log = createLogger("mikrom.bus.connection");
  const timeoutMs = parts.timeoutMs ?? 30_000;
  await Promise.all([
    ...(parts.consumers ?? []).map((c) => c.stop({ timeoutMs })),
    ...(parts.queries ?? []).map((q) => q.stop()),
  ]);
  if (nc.isClosed() || nc.isDraining()) return;
  // Draining needs the server: with it gone (the whole system stopping at once) it would wait for a
  // reconnect that never comes, so it is bounded and the connection is then closed.
  const drainMs = parts.drainTimeoutMs ?? 5_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const drained = await Promise.race([
      nc.drain().then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    if (drained) log.info({}, "NATS connection drained");
    else {
      log.warn({ timeout_ms: drainMs }, "NATS connection not drained in time (server away?); closing it");
      await nc.close().catch(() => {});
    }
  } catch (error) {
    log.warn(errorFields(error), "draining the NATS connection failed");
  } finally {
    clearTimeout(timer);
  }
}
