import { type Kysely, sql } from "kysely";
import type { EventCatalog } from "./catalog.ts";
import type { DomainEvent } from "./decider.ts";
import { type Checkpoint, checkpointOf, type RecordedEvent, START } from "./event.ts";
import { selectAllAfter, toRecorded } from "./read.ts";
import type { EventStoreTables } from "./schema.ts";

/**
 * A read model built from events. The same definition runs inline (in the append transaction, see
 * the store's `projections` option) or asynchronously with a checkpoint (`createProjector`), and can
 * always be rebuilt from the events.
 */
export interface Projection<E extends DomainEvent, DB> {
  /** Names the checkpoint of an asynchronous run; unique per store. */
  readonly name: string;
  /** Applies events, in order, within the caller's transaction. */
  apply(db: Kysely<DB>, events: readonly RecordedEvent<E>[]): Promise<void>;
  /** Empties the projection's tables before a rebuild. */
  reset(db: Kysely<DB>): Promise<void>;
}

export const REBUILD_BATCH = 1000;

/**
 * Replays every event into a projection reset to empty, in one transaction. Appends wait meanwhile
 * (SHARE lock on events) so that an inline projection, which appends also write, is never written
 * twice; readers keep seeing the old rows until the rebuild commits. Returns the last event replayed.
 */
export async function replayAll<E extends DomainEvent, DB>(
  trx: Kysely<EventStoreTables>,
  catalog: EventCatalog<E>,
  projection: Projection<E, DB>,
): Promise<{ count: number; last: Checkpoint }> {
  await sql`LOCK TABLE events IN SHARE MODE`.execute(trx);
  const target = trx as unknown as Kysely<DB>;
  await projection.reset(target);
  let last = START;
  let count = 0;
  for (;;) {
    const rows = await selectAllAfter(trx, last, REBUILD_BATCH);
    if (rows.length === 0) break;
    const events = rows.map((row) => toRecorded(catalog, row));
    await projection.apply(target, events);
    last = checkpointOf(events.at(-1)!);
    count += events.length;
  }
  return { count, last };
}
