import type { ColumnType, Generated, Kysely } from "kysely";

/**
 * The service's own tables (migrations/), so that kysely rejects wrong SQL at compile time; the event
 * store's (events, outbox, inbox) belong to @mikrom/eventstore. inet and cidr travel as text
 * ("10.0.0.2", "10.0.0.0/24"); bigserial as text, as pg reads int8.
 */
export interface IppoolTables {
  ippool_pools: PoolsTable;
  ippool_free: FreeTable;
  ippool_allocations: AllocationsTable;
}

export interface PoolsTable {
  pool_id: string;
  name: string;
  network: string;
  gateway: string;
  range_start: string;
  range_end: string;
  /** range_end - range_start + 1 (a CHECK holds it to that). */
  size: number;
  /** The cursor: range_start + next_offset is the next never-used address. */
  next_offset: Generated<number>;
  /** Addresses held now. */
  allocated: Generated<number>;
  description: string | null;
  active: Generated<boolean>;
  created_at: ColumnType<Date, Date, never>;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Addresses given back, handed out again oldest first (by seq). */
export interface FreeTable {
  seq: Generated<string>;
  pool_id: string;
  address: string;
}

/** Every allocation ever made; a live one has no released_at. */
export interface AllocationsTable {
  allocation_id: Generated<string>;
  pool_id: string;
  vm_id: string;
  address: string;
  allocated_at: ColumnType<Date, Date, never>;
  released_at: Date | null;
}

/** A connection or the transaction of a command, a projection or a test: the store's functions take either. */
export type Db = Kysely<IppoolTables>;
