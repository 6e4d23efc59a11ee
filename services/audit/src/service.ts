import { querySpec, serveQuery } from "@mikrom/bus";
import {
  AUDIT_SERVICE,
  ippoolEvents,
  ListAudit,
  provisionerEvents,
  Registry,
  vmEvents,
} from "@mikrom/contracts";
import {
  type DatabaseStore,
  openMigratedDatabase,
  startService as run,
  type ServiceDefinition,
} from "@mikrom/runtime";
import { createLogger, currentTraceId, getContext } from "@mikrom/telemetry";
import type { Config } from "./config.ts";
import { entryOf } from "./entry.ts";
import { type AuditDatabase, list, recorder } from "./store/audit-log.ts";
import { migrate } from "./store/migrations.ts";

const log = createLogger("mikrom.audit");
export const EVENTS_DURABLE = "audit-events";

/** Every event of every service, in a durable consumer all replicas share, into the append-only log. */
export const auditService: ServiceDefinition<Config, DatabaseStore<AuditDatabase>, object> = {
  name: "audit",
  openStore: (config) =>
    openMigratedDatabase<AuditDatabase>(
      config.databaseUrl,
      { max: config.concurrency + 1, applicationName: "audit" },
      migrate,
    ),
  async start({ config, names, nc, store: { db } }) {
    const record = recorder(db);
    return {
      consumers: [
        {
          stream: names.streams.events,
          durable: EVENTS_DURABLE,
          filterSubject: names.allEvents,
          maxAckPending: 10_000,
          description: "audit: every event, into the append-only audit log",
          registry: new Registry([...vmEvents, ...ippoolEvents, ...provisionerEvents]),
          concurrency: config.concurrency,
          handle: async (envelope) => {
            const entry = entryOf(names, envelope, getContext(), currentTraceId());
            if (await record(entry)) log.debug({ type: entry.type, event_id: entry.eventId }, "recorded");
          },
        },
      ],
      queries: [
        serveQuery(nc, querySpec(names, AUDIT_SERVICE, ListAudit), (q) => list(db, q), { queue: "audit" }),
      ],
    };
  },
};

/** The audit service in this process (tests); `main.ts` runs it as a process. */
export const startService = (config: Config) => run(auditService, config);
