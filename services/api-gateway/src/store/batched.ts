import { isUnavailable } from "@mikrom/bus";
import { detached } from "@mikrom/telemetry";

/** Statements larger than this are split: a bound on one statement's parameters and rows. */
const MAX_BATCH = 256;

interface Waiter<I, O> {
  readonly input: I;
  readonly resolve: (output: O) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Calls run together: under load many requests need the same statement at once (their user, their
 * rate limit, their command's record), and one round trip for all of them costs PostgreSQL and this
 * process a fraction of one each. A call made while a batch is out waits for it and goes with the
 * next, with every other call made meanwhile; with none out it goes at the end of this turn of the
 * event loop. A batch starts after every call in it was made, so what it reads is no older than a
 * statement of each call's own would be.
 *
 * `run` answers the inputs in order (one output each) and must be all or nothing (one statement):
 * a batch PostgreSQL refuses is run again call by call, so that the input it refused fails alone.
 * A batch that failed because the server is away fails each call with that error at once, without
 * a second wait. It runs outside the callers' traces: it is no one request's work.
 */
export function batched<I, O>(
  run: (inputs: readonly I[]) => Promise<readonly O[]>,
): (input: I) => Promise<O> {
  const waiting: Waiter<I, O>[] = [];
  let scheduled = false;
  let out = false;
  const flush = (): void => {
    scheduled = false;
    const batch = waiting.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    out = true;
    const attempt = (inputs: readonly I[]) => detached(() => Promise.resolve().then(() => run(inputs)));
    attempt(batch.map((w) => w.input))
      .then(
        (outputs) => {
          for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
        },
        (error: unknown) => {
          if (batch.length === 1 || isUnavailable(error)) {
            for (const w of batch) w.reject(error);
            return;
          }
          return Promise.all(
            batch.map((w) =>
              attempt([w.input]).then(
                (outputs) => w.resolve(outputs[0] as O),
                (alone: unknown) => w.reject(alone),
              ),
            ),
          );
        },
      )
      .finally(() => {
        out = false;
        flush();
      });
  };
  return (input) =>
    new Promise<O>((resolve, reject) => {
      waiting.push({ input, resolve, reject });
      if (out || scheduled) return;
      scheduled = true;
      detached(() => setImmediate(flush));
    });
}
