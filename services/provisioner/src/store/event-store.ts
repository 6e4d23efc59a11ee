import { HOST_CONTEXT, type Names, PROVISIONER_SERVICE, provisionerEvents } from "@mikrom/contracts";
import { createEventStore, type EventStore, type EventsOf } from "@mikrom/eventstore";
import { provisionerMigrations } from "./migrations.ts";
import type { ProvisionerTables } from "./tables.ts";

export type ProvisionerEvent = EventsOf<typeof provisionerEvents>;
export type AgentStore = EventStore<ProvisionerEvent, ProvisionerTables>;

/** The event stream of one VM in this host's database. */
export function vmStream(vmId: string): string {
  return `vm-${vmId}`;
}

/**
 * The host's PostgreSQL store: the instances table (the state), and the event store whose outbox
 * publishes each fact under its host: VM facts to `<ns>.evt.provisioner.<hostId>.<Type>`, host facts to
 * `<ns>.evt.host.<hostId>.<Type>` (the only subjects the host's NATS user may publish to).
 */
export function openAgentStore(options: {
  databaseUrl: string;
  names: Names;
  poolSize: number;
}): Promise<AgentStore> {
  const { names } = options;
  return createEventStore<typeof provisionerEvents, ProvisionerTables>({
    connectionString: options.databaseUrl,
    events: provisionerEvents,
    route: (event) => {
      const data = event.data as { vmId?: string; hostId: string };
      return {
        subject: names.event(data.vmId ? PROVISIONER_SERVICE : HOST_CONTEXT, data.hostId, event.type),
      };
    },
    migrations: provisionerMigrations,
    pool: { max: options.poolSize, applicationName: "mikrom-provisioner" },
  });
}
