import type { PoolSnapshot } from "../domain/allocation.ts";
import type { Pool } from "../domain/pool.ts";
import type { ExistingPool } from "../domain/validation.ts";
import type { Sql } from "./sql.ts";

/**
 * The pools table: the projection of PoolCreated/PoolUpdated/PoolDeleted, and the row every
 * allocation in a pool locks (the cursor and the counters live on it).
 */

export async function livePools(sql: Sql, exceptPoolId?: string): Promise<ExistingPool[]> {
  const { rows } = await sql.query<ExistingPool>(
    `SELECT pool_id AS "poolId", name, network::text AS cidr
       FROM ippool_pools WHERE deleted_at IS NULL AND pool_id IS DISTINCT FROM $1 ORDER BY name`,
    [exceptPoolId ?? null],
  );
  return rows;
}

export async function insertPool(sql: Sql, pool: Pool, at: Date): Promise<void> {
  await sql.query(
    `INSERT INTO ippool_pools
       (pool_id, name, network, gateway, range_start, range_end, size, description, active, created_at, updated_at)
     VALUES ($1, $2, $3::cidr, $4::inet, $5::inet, $6::inet, ($6::inet - $5::inet) + 1, $7, $8, $9, $9)`,
    [
      pool.poolId,
      pool.name,
      pool.cidr,
      pool.gateway,
      pool.rangeStart,
      pool.rangeEnd,
      pool.description,
      pool.active,
      at,
    ],
  );
}

export async function updatePool(
  sql: Sql,
  poolId: string,
  changes: { name?: string; description?: string | null; active?: boolean },
  at: Date,
): Promise<void> {
  await sql.query(
    `UPDATE ippool_pools SET
       name = CASE WHEN $2::boolean THEN $3 ELSE name END,
       description = CASE WHEN $4::boolean THEN $5 ELSE description END,
       active = COALESCE($6, active),
       updated_at = $7
     WHERE pool_id = $1`,
    [
      poolId,
      changes.name !== undefined,
      changes.name ?? null,
      changes.description !== undefined,
      changes.description ?? null,
      changes.active ?? null,
      at,
    ],
  );
}

export async function markPoolDeleted(sql: Sql, poolId: string, at: Date): Promise<void> {
  await sql.query("UPDATE ippool_pools SET deleted_at = $2, updated_at = $2 WHERE pool_id = $1", [
    poolId,
    at,
  ]);
}

/**
 * Locks a live pool by name for an allocation: allocations in one pool go one at a time (the
 * cursor moves under this lock) and a delete cannot slip between the check and the hand-out.
 */
export async function lockPoolByName(sql: Sql, name: string): Promise<PoolSnapshot | null> {
  const { rows } = await sql.query<PoolSnapshot>(
    `SELECT pool_id AS "poolId", name, active, masklen(network) AS "prefixLength", host(gateway) AS gateway
       FROM ippool_pools WHERE name = $1 AND deleted_at IS NULL FOR UPDATE`,
    [name],
  );
  return rows[0] ?? null;
}

/** Locks a pool by id (for a delete or a release) and says how many addresses it has out. */
export async function lockPoolById(sql: Sql, poolId: string): Promise<{ allocated: number } | null> {
  const { rows } = await sql.query<{ allocated: number }>(
    "SELECT allocated FROM ippool_pools WHERE pool_id = $1 FOR UPDATE",
    [poolId],
  );
  return rows[0] ?? null;
}
