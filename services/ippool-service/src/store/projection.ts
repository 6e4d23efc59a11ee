import type { Kysely } from "kysely";
import type { AllocationEvent } from "../domain/allocation.ts";
import type { PoolEvent } from "../domain/pool.ts";
import { recordAllocation, recordRelease } from "./addresses.ts";
import { insertPool, markPoolDeleted, updatePool } from "./pools.ts";
import { kyselySql, type Sql } from "./sql.ts";

export type IppoolEvent = PoolEvent | AllocationEvent;

/** An event with the time it was recorded: what the projection needs of the event store's RecordedEvent. */
export type Recorded<E> = E & { readonly recordedAt: Date };

/**
 * The read model (pools, free lists, allocations) as a function of the events: written in the
 * transaction that appends them, and rebuildable from them. The handlers only look (which address
 * is next) and decide; this is the one writer of the tables.
 */
export async function applyEvents(sql: Sql, events: readonly Recorded<IppoolEvent>[]): Promise<void> {
  for (const event of events) {
    const at = event.recordedAt;
    switch (event.type) {
      case "PoolCreated":
        await insertPool(sql, { ...event.data, active: true }, at);
        break;
      case "PoolUpdated": {
        const { poolId, ...changes } = event.data;
        await updatePool(sql, poolId, changes, at);
        break;
      }
      case "PoolDeleted":
        await markPoolDeleted(sql, event.data.poolId, at);
        break;
      case "IpAllocated":
        await recordAllocation(sql, { ...event.data, at });
        break;
      case "IpReleased":
        await recordRelease(sql, { ...event.data, at });
        break;
      case "IpAllocationFailed":
        break;
    }
  }
}

/** The projection as the event store runs it (inline, and for `store.rebuild`). */
export const ippoolProjection = {
  name: "ippool-read-model",
  // biome-ignore lint/suspicious/noExplicitAny: the tables are written by SQL, not typed through kysely
  async apply(db: Kysely<any>, events: readonly Recorded<IppoolEvent>[]): Promise<void> {
    await applyEvents(kyselySql(db), events);
  },
  // biome-ignore lint/suspicious/noExplicitAny: see apply
  async reset(db: Kysely<any>): Promise<void> {
    await kyselySql(db).query("TRUNCATE ippool_allocations, ippool_free, ippool_pools RESTART IDENTITY");
  },
};
