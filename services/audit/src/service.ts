import { hostname } from "node:os";
import { connectNats, declareTopology, querySpec, serveQuery, shutdown, startConsumer } from "@mikrom/bus";
import {
  AUDIT_SERVICE,
  ippoolEvents,
  ListAudit,
  names as namesOf,
  provisionerEvents,
  Registry,
  vmEvents,
} from "@mikrom/contracts";
import { ensureDatabase, type Running } from "@mikrom/runtime";
import { createLogger, currentTraceId, getContext } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Config } from "./config.ts";
import { entryOf } from "./entry.ts";
import { list, openDatabase, record } from "./store/audit-log.ts";
import { migrate } from "./store/migrations.ts";

const log = createLogger("mikrom.audit");
export const EVENTS_DURABLE = "audit-events";

/** Every event of every service, in a durable consumer all replicas share, into the append-only log. */
export async function startService(config: Config): Promise<Running> {
  const names = namesOf(config.namespace);
  if ((await ensureDatabase(config.databaseUrl)) === "created") log.info({}, "database created");
  const db = openDatabase(config.databaseUrl, config.concurrency + 1);
  await migrate(db);

  const nc = await connectNats({ servers: config.natsUrl, name: `audit ${hostname()} ${process.pid}` });
  await declareTopology(await jetstreamManager(nc), names, {
    replicas: config.streamReplicas,
    consumers: [
      {
        stream: names.streams.events,
        durable: EVENTS_DURABLE,
        filterSubject: names.allEvents,
        maxAckPending: 10_000,
        description: "audit: every event, into the append-only audit log",
      },
    ],
  });

  const consumer = await startConsumer(nc, {
    names,
    stream: names.streams.events,
    durable: EVENTS_DURABLE,
    registry: new Registry([...vmEvents, ...ippoolEvents, ...provisionerEvents]),
    concurrency: config.concurrency,
    handle: async (envelope) => {
      const entry = entryOf(envelope, getContext(), currentTraceId());
      if (await record(db, entry)) log.debug({ type: entry.type, event_id: entry.eventId }, "recorded");
    },
  });
  const queries = serveQuery(nc, querySpec(names, AUDIT_SERVICE, ListAudit), (q) => list(db, q), {
    queue: "audit",
  });
  log.info({ namespace: names.namespace }, "audit started");

  return {
    async stop() {
      await shutdown(nc, { consumers: [consumer], queries: [queries] });
      await db.destroy();
    },
  };
}
