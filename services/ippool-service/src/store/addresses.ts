import type { Sql } from "./sql.ts";

/**
 * Which address a pool hands out next, and the bookkeeping when it is handed out or given back.
 * All of it runs inside the transaction that appends the events, after the pool row was locked.
 */

/**
 * The address the pool would hand out now: the one given back longest ago, else the next never-used
 * one under the cursor; null when the pool is exhausted. Two index lookups whatever the pool's size
 * or fill: no scan of the range. Under the pool lock nobody can take it before this transaction does.
 */
export async function nextFreeAddress(sql: Sql, poolId: string): Promise<string | null> {
  const { rows } = await sql.query<{ address: string | null }>(
    `SELECT COALESCE(
        (SELECT host(address) FROM ippool_free WHERE pool_id = $1 ORDER BY seq LIMIT 1),
        (SELECT host(range_start + next_offset) FROM ippool_pools WHERE pool_id = $1 AND next_offset < size)
     ) AS address`,
    [poolId],
  );
  return rows[0]?.address ?? null;
}

/**
 * Records that `vmId` holds `address`: off the free list (or past the cursor), onto the allocations.
 * The partial unique indexes refuse a second live holder of the address and a second live address
 * for the VM, so a bug above cannot hand an address out twice. Applying the same IpAllocated again
 * (the answer repeated to a VM that asks twice) changes nothing.
 */
export async function recordAllocation(
  sql: Sql,
  a: { poolId: string; vmId: string; address: string; at: Date },
): Promise<void> {
  // One statement: it runs while the pool row is locked, so every round trip saved is throughput.
  const { rows } = await sql.query<{ held: boolean; recorded: boolean }>(
    `WITH held AS (
       SELECT 1 FROM ippool_allocations
        WHERE vm_id = $2 AND pool_id = $1 AND address = $3::inet AND released_at IS NULL
     ), freed AS (
       DELETE FROM ippool_free WHERE pool_id = $1 AND address = $3::inet AND NOT EXISTS (SELECT 1 FROM held)
       RETURNING 1
     ), counted AS (
       UPDATE ippool_pools
          SET allocated = allocated + 1,
              next_offset = next_offset + CASE WHEN EXISTS (SELECT 1 FROM freed) THEN 0 ELSE 1 END
        WHERE pool_id = $1 AND NOT EXISTS (SELECT 1 FROM held)
          AND (EXISTS (SELECT 1 FROM freed) OR (next_offset < size AND range_start + next_offset = $3::inet))
       RETURNING 1
     ), recorded AS (
       INSERT INTO ippool_allocations (pool_id, vm_id, address, allocated_at)
       SELECT $1, $2, $3::inet, $4 WHERE EXISTS (SELECT 1 FROM counted)
       RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM held) AS held, EXISTS (SELECT 1 FROM recorded) AS recorded`,
    [a.poolId, a.vmId, a.address, a.at],
  );
  const row = rows[0];
  if (row?.held || row?.recorded) return;
  throw new Error(`${a.address} is not free in ${a.poolId}: the allocation and the read model disagree`);
}

/** Ends the VM's live allocation (its row stays, for provenance) and puts the address on the free list. */
export async function recordRelease(
  sql: Sql,
  r: { poolId: string; vmId: string; address: string; at: Date },
): Promise<void> {
  const ended = await sql.query(
    `UPDATE ippool_allocations SET released_at = $4
      WHERE pool_id = $1 AND vm_id = $2 AND address = $3::inet AND released_at IS NULL
      RETURNING allocation_id`,
    [r.poolId, r.vmId, r.address, r.at],
  );
  if (ended.rows.length !== 1) {
    throw new Error(
      `no live allocation of ${r.address} to ${r.vmId} in ${r.poolId}: read model and events disagree`,
    );
  }
  await sql.query("INSERT INTO ippool_free (pool_id, address) VALUES ($1, $2::inet)", [r.poolId, r.address]);
  await sql.query("UPDATE ippool_pools SET allocated = allocated - 1 WHERE pool_id = $1", [r.poolId]);
}
