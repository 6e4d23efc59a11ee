import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";

/** Redelivery delays after a handler failure, by delivery: 1s, 5s, 15s, then every 30s. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [1_000, 5_000, 15_000, 30_000];

/**
 * How long to hold a failed message before its next delivery. The server's consumer back-off only
 * applies to ack timeouts (nats-server 2.9), so a handler failure is nak'ed with this delay instead.
 */
export function nakDelayMs(
  deliveryCount: number,
  delaysMs: readonly number[] = DEFAULT_RETRY_DELAYS_MS,
): number {
  if (delaysMs.length === 0) return 0;
  const index = Math.min(Math.max(deliveryCount, 1), delaysMs.length) - 1;
  return delaysMs[index] ?? 0;
}

/**
 * Errors worth retrying a publish or a request for: the server is restarting, JetStream is still
 * recovering, or the connection is between servers. A closed or draining connection is not one.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof errors.ClosedConnectionError || error instanceof errors.DrainingConnectionError) {
    return false;
  }
  if (error instanceof errors.TimeoutError || error instanceof errors.NoRespondersError) return true;
  if (error instanceof errors.RequestError || error instanceof errors.ConnectionError) return true;
  if (error instanceof JetStreamApiError) return error.code === 503 || error.status === 503;
  return false;
}

/** Waits `ms`, or less when the signal fires first. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
