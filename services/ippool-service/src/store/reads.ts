import type { AllocationRecord, PoolStats, PoolView } from "@mikrom/contracts";
import { snapshotColumns } from "./pools.ts";
import type { Db } from "./tables.ts";

/** The read side served over `<ns>.qry.ippool.*`: pools, their usage, and who held which address. */

/** Live pools with the columns of a PoolView (timestamps still Dates). */
function livePoolRows(db: Db) {
  return db
    .selectFrom("ippool_pools")
    .select(snapshotColumns)
    .select((eb) => [
      "network as cidr",
      eb.fn<string>("host", ["range_start"]).as("rangeStart"),
      eb.fn<string>("host", ["range_end"]).as("rangeEnd"),
      "description",
      "created_at as createdAt",
      "updated_at as updatedAt",
    ])
    .where("deleted_at", "is", null);
}

type PoolRow = Omit<PoolView, "createdAt" | "updatedAt"> & { createdAt: Date; updatedAt: Date };

const toView = (r: PoolRow): PoolView => ({
  ...r,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

export async function listPools(db: Db): Promise<PoolView[]> {
  const rows = await livePoolRows(db).orderBy("created_at").orderBy("name").execute();
  return rows.map(toView);
}

export async function getPool(db: Db, poolId: string): Promise<PoolView | null> {
  const row = await livePoolRows(db).where("pool_id", "=", poolId).executeTakeFirst();
  return row ? toView(row) : null;
}

export async function getPoolByName(db: Db, name: string): Promise<PoolView | null> {
  const row = await livePoolRows(db).where("name", "=", name).executeTakeFirst();
  return row ? toView(row) : null;
}

export function usagePercent(allocated: number, total: number): number {
  return total === 0 ? 0 : Math.round((allocated / total) * 10_000) / 100;
}

/** Usage of live pools (one, or all); O(1) per pool: the counters live on the pool row. */
export async function poolStats(db: Db, poolId?: string): Promise<PoolStats[]> {
  let q = db
    .selectFrom("ippool_pools")
    .select(["pool_id as poolId", "name", "active", "size as total", "allocated"])
    .where("deleted_at", "is", null);
  if (poolId !== undefined) q = q.where("pool_id", "=", poolId);
  const rows = await q.orderBy("created_at").orderBy("name").execute();
  return rows.map((r) => ({
    ...r,
    available: r.total - r.allocated,
    usagePercent: usagePercent(r.allocated, r.total),
  }));
}

/** Allocations with their pool's name, newest first. */
function allocationRows(db: Db) {
  return db
    .selectFrom("ippool_allocations as a")
    .innerJoin("ippool_pools as p", "p.pool_id", "a.pool_id")
    .select((eb) => [
      "a.vm_id as vmId",
      "a.pool_id as poolId",
      "p.name as pool",
      eb.fn<string>("host", ["a.address"]).as("address"),
      "a.allocated_at as allocatedAt",
      "a.released_at as releasedAt",
    ])
    .orderBy("a.allocated_at", "desc")
    .orderBy("a.allocation_id", "desc");
}

type AllocationRow = Omit<AllocationRecord, "allocatedAt" | "releasedAt"> & {
  allocatedAt: Date;
  releasedAt: Date | null;
};

const toRecord = (r: AllocationRow): AllocationRecord => ({
  ...r,
  allocatedAt: r.allocatedAt.toISOString(),
  releasedAt: r.releasedAt?.toISOString() ?? null,
});

/** Every VM that held `address`, in any pool (deleted ones included), newest first. */
export async function addressHistory(db: Db, address: string): Promise<AllocationRecord[]> {
  const rows = await allocationRows(db).where("a.address", "=", address).execute();
  return rows.map(toRecord);
}

/** Every address `vmId` held, newest first. */
export async function vmAllocations(db: Db, vmId: string): Promise<AllocationRecord[]> {
  const rows = await allocationRows(db).where("a.vm_id", "=", vmId).execute();
  return rows.map(toRecord);
}
