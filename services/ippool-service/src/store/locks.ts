import { sql } from "kysely";
import type { Db } from "./tables.ts";

/**
 * A lock on a name, held until the transaction ends, on every instance. A function call on no table,
 * so there is nothing for kysely to type: written with its `sql` tag, as vm-service's locks are.
 */
async function lockName(db: Db, name: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${name}, 0))`.execute(db);
}

/**
 * Serializes everything done for one VM (allocate, release, their duplicates) across every
 * instance, for the length of the transaction: the VM's stream is then read and appended without
 * a race, and an address is never taken for a VM that is about to find it already holds one.
 * Always taken first, before any pool row, so lock order is the same everywhere.
 */
export function lockVm(db: Db, vmId: string): Promise<void> {
  return lockName(db, `ippool:vm:${vmId}`);
}

/**
 * Pool commands are rare and read every other pool (names, overlaps): one at a time across all
 * instances, so the decider always sees every committed pool. The database constraints stay the
 * last word either way.
 */
export function lockPoolCatalog(db: Db): Promise<void> {
  return lockName(db, "ippool:pools");
}
