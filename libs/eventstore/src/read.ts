import { type Kysely, sql } from "kysely";
import type { EventCatalog } from "./catalog.ts";
import type { DomainEvent } from "./decider.ts";
import type { Checkpoint, EventMetadata, RecordedEvent } from "./event.ts";
import { PREPARED } from "./pool.ts";
import type { EventStoreTables } from "./schema.ts";

export interface EventRow {
  event_id: string;
  stream_id: string;
  stream_version: number;
  global_position: string;
  tx_id: string;
  type: string;
  schema_version: number;
  data: unknown;
  metadata: EventMetadata;
  recorded_at: Date;
}

const COLUMNS = sql`event_id, stream_id, stream_version, global_position::text AS global_position,
  tx_id::text AS tx_id, type, schema_version, data, metadata, recorded_at`;

export function toRecorded<E extends DomainEvent>(catalog: EventCatalog<E>, row: EventRow): RecordedEvent<E> {
  const event = catalog.decode(row.type, row.schema_version, row.data);
  return {
    ...event,
    id: row.event_id,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    globalPosition: BigInt(row.global_position),
    txId: BigInt(row.tx_id),
    metadata: row.metadata,
    recordedAt: row.recorded_at,
  } as RecordedEvent<E>;
}

export async function selectStream(
  db: Kysely<EventStoreTables>,
  streamId: string,
  afterVersion: number,
): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`${sql.raw(PREPARED)}
    SELECT ${COLUMNS} FROM events
    WHERE stream_id = ${streamId} AND stream_version > ${afterVersion}
    ORDER BY events.stream_version`.execute(db);
  return rows;
}

/**
 * The oldest transaction that may still add events: the smallest id among the transactions running
 * in this statement's snapshot, leaving out those seen running in another database (they cannot write
 * here), else the next id to be handed out. Everything below it is final. A cluster-wide
 * `pg_snapshot_xmin` would be correct too, but would make readers wait on every other database's
 * long transactions. Unknown xids (subtransactions, prepared transactions, backends this role may not
 * see) stay in: the horizon errs on the early side only.
 */
const HORIZON = sql`(
  SELECT coalesce(
    (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
     WHERE x::xid NOT IN (
       SELECT backend_xid FROM pg_stat_activity
       WHERE backend_xid IS NOT NULL AND datname IS NOT NULL AND datname <> current_database())),
    pg_snapshot_xmax(snap.s))
  FROM (SELECT pg_current_snapshot() AS s) AS snap
)`;

/**
 * Events after a checkpoint in (transaction id, position) order, only from transactions older than
 * every transaction of this database still running: whatever commits later sorts after what this returns.
 */
export async function selectAfter(
  db: Kysely<EventStoreTables>,
  after: Checkpoint,
  limit: number,
): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`${sql.raw(PREPARED)}
    SELECT ${COLUMNS} FROM events
    WHERE events.tx_id < ${HORIZON}
      AND (events.tx_id, events.global_position) > (${after.txId.toString()}::xid8, ${after.position.toString()}::bigint)
    ORDER BY events.tx_id, events.global_position
    LIMIT ${limit}`.execute(db);
  return rows;
}

/**
 * Every visible event after a checkpoint, in the same order, without the horizon: for rebuilds, which
 * first lock out appends, so nothing is left in flight.
 */
export async function selectAllAfter(
  db: Kysely<EventStoreTables>,
  after: Checkpoint,
  limit: number,
): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`
    SELECT ${COLUMNS} FROM events
    WHERE (events.tx_id, events.global_position) > (${after.txId.toString()}::xid8, ${after.position.toString()}::bigint)
    ORDER BY events.tx_id, events.global_position
    LIMIT ${limit}`.execute(db);
  return rows;
}
