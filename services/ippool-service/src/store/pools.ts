import { type ExpressionBuilder, sql, type Updateable } from "kysely";
import type { PoolSnapshot } from "../domain/allocation.ts";
import type { Pool } from "../domain/pool.ts";
import type { ExistingPool } from "../domain/validation.ts";
import type { Db, IppoolTables, PoolsTable } from "./tables.ts";

/**
 * The pools table: the projection of PoolCreated/PoolUpdated/PoolDeleted, and the row every
 * allocation in a pool locks (the cursor and the counters live on it).
 */

export async function livePools(db: Db, exceptPoolId?: string): Promise<ExistingPool[]> {
  let q = db
    .selectFrom("ippool_pools")
    .select(["pool_id as poolId", "name", "network as cidr"])
    .where("deleted_at", "is", null);
  if (exceptPoolId !== undefined) q = q.where("pool_id", "<>", exceptPoolId);
  return q.orderBy("name").execute();
}

export async function insertPool(db: Db, pool: Pool, at: Date): Promise<void> {
  await db
    .insertInto("ippool_pools")
    .values({
      pool_id: pool.poolId,
      name: pool.name,
      network: pool.cidr,
      gateway: pool.gateway,
      range_start: pool.rangeStart,
      range_end: pool.rangeEnd,
      // inet - inet: an operator kysely's types cannot express.
      size: sql<number>`(${pool.rangeEnd}::inet - ${pool.rangeStart}::inet) + 1`,
      description: pool.description,
      active: pool.active,
      created_at: at,
      updated_at: at,
    })
    .execute();
}

export async function updatePool(
  db: Db,
  poolId: string,
  changes: { name?: string; description?: string | null; active?: boolean },
  at: Date,
): Promise<void> {
  const set: Updateable<PoolsTable> = { updated_at: at };
  if (changes.name !== undefined) set.name = changes.name;
  if (changes.description !== undefined) set.description = changes.description;
  if (changes.active !== undefined) set.active = changes.active;
  await db.updateTable("ippool_pools").set(set).where("pool_id", "=", poolId).execute();
}

export async function markPoolDeleted(db: Db, poolId: string, at: Date): Promise<void> {
  await db
    .updateTable("ippool_pools")
    .set({ deleted_at: at, updated_at: at })
    .where("pool_id", "=", poolId)
    .execute();
}

/** A pool as an allocation sees it (PoolSnapshot); a pool's view (reads.ts) starts with the same. */
export function snapshotColumns(eb: ExpressionBuilder<IppoolTables, "ippool_pools">) {
  return [
    "pool_id as poolId",
    "name",
    "active",
    eb.fn<number>("masklen", ["network"]).as("prefixLength"),
    eb.fn<string>("host", ["gateway"]).as("gateway"),
  ] as const;
}

/**
 * Locks a live pool by name for an allocation: allocations in one pool go one at a time (the
 * cursor moves under this lock) and a delete cannot slip between the check and the hand-out.
 */
export async function lockPoolByName(db: Db, name: string): Promise<PoolSnapshot | null> {
  const row = await db
    .selectFrom("ippool_pools")
    .select(snapshotColumns)
    .where("name", "=", name)
    .where("deleted_at", "is", null)
    .forUpdate()
    .executeTakeFirst();
  return row ?? null;
}

/** Locks a pool by id (for a delete or a release) and says how many addresses it has out. */
export async function lockPoolById(db: Db, poolId: string): Promise<{ allocated: number } | null> {
  const row = await db
    .selectFrom("ippool_pools")
    .select("allocated")
    .where("pool_id", "=", poolId)
    .forUpdate()
    .executeTakeFirst();
  return row ?? null;
}

/** Locks the pool of the address a VM holds, if any: its release moves that pool's counters. */
export async function lockHeldPool(db: Db, vmId: string): Promise<void> {
  await db
    .selectFrom("ippool_pools")
    .select("pool_id")
    .where("pool_id", "in", (eb) =>
      eb
        .selectFrom("ippool_allocations")
        .select("pool_id")
        .where("vm_id", "=", vmId)
        .where("released_at", "is", null),
    )
    .forUpdate()
    .execute();
}
