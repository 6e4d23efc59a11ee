import { detached } from "@mikrom/telemetry";

export interface BatchedOptions<I> {
  /** Batches out at once (default 1). */
  readonly limit?: number;
  /** Inputs in one batch at most (default 256): a bound on one statement's parameters and rows. */
  readonly maxBatch?: number;
  /** Inputs with the same key never share a batch: a second one goes in a later batch. */
  readonly key?: (input: I) => string;
  /**
   * Errors after which every call of a failed batch fails at once, without being tried alone: the
   * server is away, and a second wait for each would only delay the answer (default: none).
   */
  readonly failsAll?: (error: unknown) => boolean;
}

interface Waiter<I, O> {
  readonly input: I;
  readonly resolve: (output: O) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit: calls run together. Under load many callers need the same statement at once, and one
 * round trip and one commit for all of them cost the database and this process a fraction of one
 * each. A call made while `limit` batches are out waits and goes with the next, with every call made
 * meanwhile; with a batch free it goes at the end of this turn of the event loop, with the calls made
 * in the same turn. A batch starts after every call in it was made, so what it reads is no older than
 * a statement of each call's own would be.
 *
 * `run` answers the inputs in order (one output each) and is all or nothing (one statement): a batch
 * the database refuses is run again call by call, so that the input it refused fails alone. It runs
 * outside the callers' traces: it is no one call's work.
 */
export function batched<I, O>(
  run: (inputs: readonly I[]) => Promise<readonly O[]>,
  options: BatchedOptions<I> = {},
): (input: I) => Promise<O> {
  const limit = Math.max(1, options.limit ?? 1);
  const maxBatch = options.maxBatch ?? 256;
  let waiting: Waiter<I, O>[] = [];
  let scheduled = false;
  let out = 0;

  const attempt = (inputs: readonly I[]) => detached(() => Promise.resolve().then(() => run(inputs)));

  /** Waiting calls in order, at most `maxBatch`, one per key. */
  const take = (): Waiter<I, O>[] => {
    const batch: Waiter<I, O>[] = [];
    const rest: Waiter<I, O>[] = [];
    const keys = new Set<string>();
    for (const w of waiting) {
      const key = options.key?.(w.input);
      if (batch.length < maxBatch && (key === undefined || !keys.has(key))) {
        if (key !== undefined) keys.add(key);
        batch.push(w);
      } else rest.push(w);
    }
    waiting = rest;
    return batch;
  };

  const settle = async (batch: readonly Waiter<I, O>[]): Promise<void> => {
    try {
      const outputs = await attempt(batch.map((w) => w.input));
      for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
    } catch (error) {
      if (batch.length === 1 || options.failsAll?.(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      await Promise.all(
        batch.map((w) =>
          attempt([w.input]).then(
            (outputs) => w.resolve(outputs[0] as O),
            (alone: unknown) => w.reject(alone),
          ),
        ),
      );
    }
  };

  const flush = (): void => {
    scheduled = false;
    while (out < limit && waiting.length > 0) {
      out++;
      void settle(take()).finally(() => {
        out--;
        flush();
      });
    }
  };

  return (input) =>
    new Promise<O>((resolve, reject) => {
      waiting.push({ input, resolve, reject });
      if (out >= limit || scheduled) return;
      scheduled = true;
      detached(() => setImmediate(flush));
    });
}
