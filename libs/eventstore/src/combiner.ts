import type { Kysely } from "kysely";
import { type AppendInput, type AppendOutput, appendAll } from "./append.ts";
import type { EventStoreTables } from "./schema.ts";

interface Pending {
  readonly input: AppendInput;
  resolve(output: AppendOutput): void;
  reject(reason: unknown): void;
}

/**
 * Group commit for appends outside a transaction. While fewer than `limit` statements are running an
 * append goes out at once, alone; when all are busy, appends queue, and the next free slot takes every
 * queued append to a distinct stream into one statement: one round trip and one commit for many. Under
 * light load nothing waits; under heavy load the per-append cost of a commit is shared. Each append
 * still gets its own answer (see `appendAll`).
 */
export class AppendCombiner {
  readonly #db: Kysely<EventStoreTables>;
  readonly #limit: number;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #running = 0;

  constructor(db: Kysely<EventStoreTables>, limit: number, maxBatch = 64) {
    this.#db = db;
    this.#limit = Math.max(1, limit);
    this.#maxBatch = maxBatch;
  }

  append(input: AppendInput): Promise<AppendOutput> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#running < this.#limit && this.#queue.length > 0) {
      const batch = this.#take();
      this.#running++;
      void this.#run(batch).finally(() => {
        this.#running--;
        this.#dispatch();
      });
    }
  }

  /** Queued appends in order, at most one per stream (a second one to a stream waits for the next batch). */
  #take(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const streams = new Set<string>();
    for (const pending of this.#queue) {
      if (batch.length < this.#maxBatch && !streams.has(pending.input.streamId)) {
        streams.add(pending.input.streamId);
        batch.push(pending);
      } else {
        rest.push(pending);
      }
    }
    this.#queue = rest;
    return batch;
  }

  async #run(batch: readonly Pending[]): Promise<void> {
    try {
      const results = await appendAll(
        this.#db,
        batch.map((p) => p.input),
      );
      results.forEach((result, i) => {
        if (result.status === "fulfilled") batch[i]!.resolve(result.value);
        else batch[i]!.reject(result.reason);
      });
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
