import type { Projection } from "@mikrom/eventstore";
import { sql } from "kysely";
import type { AllocationEvent } from "../domain/allocation.ts";
import type { PoolEvent } from "../domain/pool.ts";
import { recordAllocation, recordRelease } from "./addresses.ts";
import { insertPool, markPoolDeleted, updatePool } from "./pools.ts";
import type { Db, IppoolTables } from "./tables.ts";

export type IppoolEvent = PoolEvent | AllocationEvent;

/** An event with the time it was recorded: what the projection needs of the event store's RecordedEvent. */
export type Recorded<E> = E & { readonly recordedAt: Date };

/**
 * The read model (pools, free lists, allocations) as a function of the events: written in the
 * transaction that appends them, and rebuildable from them. The handlers only look (which address
 * is next) and decide; this is the one writer of the tables.
 */
export async function applyEvents(db: Db, events: readonly Recorded<IppoolEvent>[]): Promise<void> {
  for (const event of events) {
    const at = event.recordedAt;
    switch (event.type) {
      case "PoolCreated":
        await insertPool(db, { ...event.data, active: true }, at);
        break;
      case "PoolUpdated": {
        const { poolId, ...changes } = event.data;
        await updatePool(db, poolId, changes, at);
        break;
      }
      case "PoolDeleted":
        await markPoolDeleted(db, event.data.poolId, at);
        break;
      case "IpAllocated":
        await recordAllocation(db, { ...event.data, at });
        break;
      case "IpReleased":
        await recordRelease(db, { ...event.data, at });
        break;
      case "IpAllocationFailed":
        break;
    }
  }
}

/** The projection as the event store runs it (inline, and for `store.rebuild`). */
export const ippoolProjection: Projection<IppoolEvent, IppoolTables> = {
  name: "ippool-read-model",
  apply: applyEvents,
  async reset(db) {
    // kysely has no TRUNCATE; the tables are named here as they are in the migration.
    await sql`TRUNCATE ippool_allocations, ippool_free, ippool_pools RESTART IDENTITY`.execute(db);
  },
};
