import { type Kysely, sql } from "kysely";

/**
 * Pools, their free addresses and every allocation ever made.
 *
 * The database itself makes a double hand-out impossible, whatever the code does: one live
 * allocation per (pool, address) and one per VM (partial unique indexes), live pools never
 * overlap (exclusion constraint on the network) nor share a name.
 *
 * Allocation cost stays flat as a pool fills: an address comes from the pool's free list (addresses
 * given back, oldest first) or else from `next_offset`, a cursor over the range that only moves
 * forward. Neither is a scan of the range: a pool of 65,534 addresses costs one row, not 65,534.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE ippool_pools (
      pool_id      text PRIMARY KEY,
      name         text NOT NULL,
      network      cidr NOT NULL,
      gateway      inet NOT NULL,
      range_start  inet NOT NULL,
      range_end    inet NOT NULL,
      size         integer NOT NULL,
      next_offset  integer NOT NULL DEFAULT 0,
      allocated    integer NOT NULL DEFAULT 0,
      description  text,
      active       boolean NOT NULL DEFAULT true,
      created_at   timestamptz NOT NULL,
      updated_at   timestamptz NOT NULL,
      deleted_at   timestamptz,
      CONSTRAINT ippool_pools_size CHECK (size = range_end - range_start + 1 AND size > 0),
      CONSTRAINT ippool_pools_cursor CHECK (next_offset BETWEEN 0 AND size),
      CONSTRAINT ippool_pools_allocated CHECK (allocated BETWEEN 0 AND next_offset),
      CONSTRAINT ippool_pools_range_in_network CHECK (range_start << network AND range_end << network),
      CONSTRAINT ippool_pools_gateway_outside_range CHECK (gateway << network AND NOT (gateway BETWEEN range_start AND range_end)),
      CONSTRAINT ippool_pools_no_overlap EXCLUDE USING gist (network inet_ops WITH &&) WHERE (deleted_at IS NULL)
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX ippool_pools_live_name ON ippool_pools (name) WHERE deleted_at IS NULL`.execute(
    db,
  );

  await sql`
    CREATE TABLE ippool_free (
      seq      bigserial PRIMARY KEY,
      pool_id  text NOT NULL REFERENCES ippool_pools (pool_id),
      address  inet NOT NULL,
      UNIQUE (pool_id, address)
    )`.execute(db);
  await sql`CREATE INDEX ippool_free_fifo ON ippool_free (pool_id, seq)`.execute(db);

  await sql`
    CREATE TABLE ippool_allocations (
      allocation_id  bigserial PRIMARY KEY,
      pool_id        text NOT NULL REFERENCES ippool_pools (pool_id),
      vm_id          text NOT NULL,
      address        inet NOT NULL,
      allocated_at   timestamptz NOT NULL,
      released_at    timestamptz,
      CONSTRAINT ippool_allocations_order CHECK (released_at IS NULL OR released_at >= allocated_at)
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX ippool_allocations_live_address ON ippool_allocations (pool_id, address) WHERE released_at IS NULL`.execute(
    db,
  );
  await sql`CREATE UNIQUE INDEX ippool_allocations_live_vm ON ippool_allocations (vm_id) WHERE released_at IS NULL`.execute(
    db,
  );
  await sql`CREATE INDEX ippool_allocations_by_address ON ippool_allocations (address, allocated_at)`.execute(
    db,
  );
  await sql`CREATE INDEX ippool_allocations_by_vm ON ippool_allocations (vm_id, allocated_at)`.execute(db);
}
