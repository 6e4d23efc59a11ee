import type { AllocationRecord, PoolStats, PoolView } from "@mikrom/contracts";
import type { Sql } from "./sql.ts";

/** The read side served over `<ns>.qry.ippool.*`: pools, their usage, and who held which address. */

const POOL_COLUMNS = `pool_id AS "poolId", name, network::text AS cidr, host(gateway) AS gateway,
  host(range_start) AS "rangeStart", host(range_end) AS "rangeEnd", description, active,
  masklen(network) AS "prefixLength", created_at AS "createdAt", updated_at AS "updatedAt"`;

type PoolRow = Omit<PoolView, "createdAt" | "updatedAt"> & { createdAt: Date; updatedAt: Date };

const toView = (r: PoolRow): PoolView => ({
  ...r,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

export async function listPools(sql: Sql): Promise<PoolView[]> {
  const { rows } = await sql.query<PoolRow>(
    `SELECT ${POOL_COLUMNS} FROM ippool_pools WHERE deleted_at IS NULL ORDER BY created_at, name`,
  );
  return rows.map(toView);
}

export async function getPool(sql: Sql, poolId: string): Promise<PoolView | null> {
  const { rows } = await sql.query<PoolRow>(
    `SELECT ${POOL_COLUMNS} FROM ippool_pools WHERE pool_id = $1 AND deleted_at IS NULL`,
    [poolId],
  );
  return rows[0] ? toView(rows[0]) : null;
}

export async function getPoolByName(sql: Sql, name: string): Promise<PoolView | null> {
  const { rows } = await sql.query<PoolRow>(
    `SELECT ${POOL_COLUMNS} FROM ippool_pools WHERE name = $1 AND deleted_at IS NULL`,
    [name],
  );
  return rows[0] ? toView(rows[0]) : null;
}

export function usagePercent(allocated: number, total: number): number {
  return total === 0 ? 0 : Math.round((allocated / total) * 10_000) / 100;
}

/** Usage of live pools (one, or all); O(1) per pool: the counters live on the pool row. */
export async function poolStats(sql: Sql, poolId?: string): Promise<PoolStats[]> {
  const { rows } = await sql.query<{
    poolId: string;
    name: string;
    active: boolean;
    total: number;
    allocated: number;
  }>(
    `SELECT pool_id AS "poolId", name, active, size AS total, allocated
       FROM ippool_pools WHERE deleted_at IS NULL AND ($1::text IS NULL OR pool_id = $1) ORDER BY created_at, name`,
    [poolId ?? null],
  );
  return rows.map((r) => ({
    ...r,
    available: r.total - r.allocated,
    usagePercent: usagePercent(r.allocated, r.total),
  }));
}

const ALLOCATION_COLUMNS = `a.vm_id AS "vmId", a.pool_id AS "poolId", p.name AS pool, host(a.address) AS address,
  a.allocated_at AS "allocatedAt", a.released_at AS "releasedAt"`;

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
export async function addressHistory(sql: Sql, address: string): Promise<AllocationRecord[]> {
  const { rows } = await sql.query<AllocationRow>(
    `SELECT ${ALLOCATION_COLUMNS} FROM ippool_allocations a JOIN ippool_pools p USING (pool_id)
      WHERE a.address = $1::inet ORDER BY a.allocated_at DESC, a.allocation_id DESC`,
    [address],
  );
  return rows.map(toRecord);
}

/** Every address `vmId` held, newest first. */
export async function vmAllocations(sql: Sql, vmId: string): Promise<AllocationRecord[]> {
  const { rows } = await sql.query<AllocationRow>(
    `SELECT ${ALLOCATION_COLUMNS} FROM ippool_allocations a JOIN ippool_pools p USING (pool_id)
      WHERE a.vm_id = $1 ORDER BY a.allocated_at DESC, a.allocation_id DESC`,
    [vmId],
  );
  return rows.map(toRecord);
}
