interface Pending<I, O> {
  readonly input: I;
  resolve(output: O): void;
  reject(reason: unknown): void;
}

export interface CombinerOptions<I> {
  /** Batches running at once. */
  readonly limit: number;
  /** Inputs in one batch at most (default 64). */
  readonly maxBatch?: number;
  /** Inputs with the same key never share a batch (a second one waits for the next). */
  readonly key?: (input: I) => string;
}

/**
 * Group commit. While fewer than `limit` batches are running a write goes out at once, alone; when
 * all are busy, writes queue, and the next free slot takes the queued ones into one batch: one round
 * trip and one commit for many. Under light load nothing waits; under heavy load the cost of a commit
 * is shared. `run` answers each input of a batch on its own (a batch that fails as a whole should be
 * tried again input by input, so that one bad input fails alone).
 */
export class Combiner<I, O> {
  readonly #run: (inputs: readonly I[]) => Promise<PromiseSettledResult<O>[]>;
  readonly #limit: number;
  readonly #maxBatch: number;
  readonly #key: ((input: I) => string) | undefined;
  #queue: Pending<I, O>[] = [];
  #running = 0;

  constructor(
    run: (inputs: readonly I[]) => Promise<PromiseSettledResult<O>[]>,
    options: CombinerOptions<I>,
  ) {
    this.#run = run;
    this.#limit = Math.max(1, options.limit);
    this.#maxBatch = options.maxBatch ?? 64;
    this.#key = options.key;
  }

  submit(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#running < this.#limit && this.#queue.length > 0) {
      const batch = this.#take();
      this.#running++;
      void this.#settle(batch).finally(() => {
        this.#running--;
        this.#dispatch();
      });
    }
  }

  /** Queued inputs in order, at most one per key. */
  #take(): Pending<I, O>[] {
    const batch: Pending<I, O>[] = [];
    const rest: Pending<I, O>[] = [];
    const keys = new Set<string>();
    for (const pending of this.#queue) {
      const key = this.#key?.(pending.input);
      if (batch.length < this.#maxBatch && (key === undefined || !keys.has(key))) {
        if (key !== undefined) keys.add(key);
        batch.push(pending);
      } else {
        rest.push(pending);
      }
    }
    this.#queue = rest;
    return batch;
  }

  async #settle(batch: readonly Pending<I, O>[]): Promise<void> {
    try {
      const results = await this.#run(batch.map((p) => p.input));
      results.forEach((result, i) => {
        if (result.status === "fulfilled") batch[i]!.resolve(result.value);
        else batch[i]!.reject(result.reason);
      });
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
