import type { Sql } from "./sql.ts";

/**
 * Serializes everything done for one VM (allocate, release, their duplicates) across every
 * instance, for the length of the transaction: the VM's stream is then read and appended without
 * a race, and an address is never taken for a VM that is about to find it already holds one.
 * Always taken first, before any pool row, so lock order is the same everywhere.
 */
export async function lockVm(sql: Sql, vmId: string): Promise<void> {
  await sql.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`ippool:vm:${vmId}`]);
}
