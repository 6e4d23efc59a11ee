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
