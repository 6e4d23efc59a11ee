import { IPPOOL_SERVICE, ippoolEvents, type Names } from "@mikrom/contracts";
import { createEventStore, type EventStore, type EventsOf, type Session } from "@mikrom/eventstore";
import { ippoolMigrations } from "./migrate.ts";
import { type IppoolEvent, ippoolProjection } from "./projection.ts";
import type { IppoolTables } from "./tables.ts";

export type IppoolStore = EventStore<EventsOf<typeof ippoolEvents>, IppoolTables>;
/** One transaction on the store: what every command handler works in. */
export type IppoolSession = Session<EventsOf<typeof ippoolEvents>, IppoolTables>;

/** A pool's definition is one stream, named after the pool; a VM's allocations another. */
const POOL_STREAM = "ippool-";
export const poolStreamId = (poolId: string): string => `${POOL_STREAM}${poolId}`;
export const vmStreamId = (vmId: string): string => `ippool-vm-${vmId}`;

/** Pool events are about the pool, allocation events about the VM: the subject carries that entity. */
export function entityOf(event: IppoolEvent): string {
  return "poolId" in event.data && !("vmId" in event.data)
    ? event.data.poolId
    : (event.data as { vmId: string }).vmId;
}

/**
 * The service's PostgreSQL store: events, outbox and inbox (@mikrom/eventstore), and the read model
 * projected inline in the same transaction. Every event is published to
 * `<ns>.evt.ippool.<poolId|vmId>.<Type>` by the outbox relay.
 */
export function openIppoolStore(options: {
  databaseUrl: string;
  names: Names;
  /** Connections; bound the handlers' concurrency by it. */
  poolSize: number;
  migrate?: boolean;
}): Promise<IppoolStore> {
  return createEventStore<typeof ippoolEvents, IppoolTables>({
    connectionString: options.databaseUrl,
    events: ippoolEvents,
    route: (event) => ({ subject: options.names.event(IPPOOL_SERVICE, entityOf(event), event.type) }),
    // Only pool commands are refused (an allocation always answers): the entity is the pool.
    refusals: (streamId) => {
      const poolId = streamId.slice(POOL_STREAM.length);
      return { subject: options.names.event(IPPOOL_SERVICE, poolId, "CommandRejected"), entityId: poolId };
    },
    projections: [ippoolProjection],
    migrations: ippoolMigrations,
    migrate: options.migrate ?? true,
    pool: { max: options.poolSize, applicationName: "mikrom-ippool" },
  });
}
