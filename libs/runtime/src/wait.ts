import { isUnavailable, pause } from "@mikrom/bus";
import { errorFields, type Logger } from "@mikrom/telemetry";

/** Back-off between attempts: 250 ms doubling to 5 s. A dependency that is away is looked for again soon. */
const FIRST_MS = 250;
const MAX_MS = 5_000;
/** While waiting, a log line at the first failure and then every this often: enough to say why, not a flood. */
const REPORT_EVERY_MS = 30_000;

/** Thrown by untilAvailable when the process was told to stop while it waited. */
export class Stopped extends Error {
  override readonly name = "Stopped";
}

/**
 * Runs `attempt` until it succeeds, waiting out every failure that says a server is away (PostgreSQL
 * restarting, NATS between servers, JetStream recovering). Any other failure is a bug or a bad
 * setting and is thrown at once. `what` names the dependency in the log ("PostgreSQL at db:5432").
 */
export async function untilAvailable<T>(
  what: string,
  attempt: () => Promise<T>,
  options: { log: Logger; signal?: AbortSignal },
): Promise<T> {
  let waitMs = FIRST_MS;
  let reportedAt = 0;
  let attempts = 0;
  for (;;) {
    if (options.signal?.aborted) throw new Stopped(`stopped while waiting for ${what}`);
    try {
      const result = await attempt();
      if (attempts > 0) options.log.info({ dependency: what, attempts: attempts + 1 }, `${what} is back`);
      return result;
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      attempts++;
      if (Date.now() - reportedAt >= REPORT_EVERY_MS) {
        reportedAt = Date.now();
        options.log.warn(
          { dependency: what, attempts, retry_in_ms: waitMs, ...errorFields(error) },
          `waiting for ${what}`,
        );
      }
      await pause(waitMs, options.signal);
      waitMs = Math.min(MAX_MS, waitMs * 2);
    }
  }
}
