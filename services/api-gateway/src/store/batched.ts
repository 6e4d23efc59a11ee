import { isUnavailable } from "@mikrom/bus";
import { batched as batchedCalls } from "@mikrom/eventstore";

/**
 * The gateway's statements of one moment in one (group commit, @mikrom/eventstore `batched`): one
 * batch out at a time, and a batch that failed because PostgreSQL is away fails every request at
 * once, so each gets its 503 without a second wait.
 */
export function batched<I, O>(
  run: (inputs: readonly I[]) => Promise<readonly O[]>,
): (input: I) => Promise<O> {
  return batchedCalls(run, { failsAll: isUnavailable });
}
