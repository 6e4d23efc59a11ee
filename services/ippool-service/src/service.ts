import { hostname } from "node:os";
import {
  type ConsumerRunner,
  connectNats,
  createPublisher,
  declareTopology,
  QueryFailed,
  type QueryServer,
  serveQuery,
  shutdown,
  startConsumer,
} from "@mikrom/bus";
import { IPPOOL_SERVICE, type Names, names as namesOf } from "@mikrom/contracts";
import { createRelay } from "@mikrom/eventstore";
import { ensureDatabase } from "@mikrom/runtime";
import { createLogger, errorFields, runInCarrier, withContext, withSpan } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Config } from "./config.ts";
import { isRefusal } from "./domain/refusal.ts";
import { commandRegistry, handleCommand, type IppoolCommand } from "./handlers/commands.ts";
import { ensureDefaultPool } from "./handlers/default-pool.ts";
import { ippoolQueryHandlers } from "./handlers/queries.ts";
import { observePools } from "./metrics.ts";
import { type IppoolStore, openIppoolStore } from "./store/event-store.ts";
import { kyselySql } from "./store/sql.ts";

const log = createLogger("mikrom.ippool-service");

/** The durable all instances share for `<ns>.cmd.ippool.>`. */
export const COMMANDS_DURABLE = "ippool-service-commands";
const QUERY_GROUP = "ippool-service";

export interface RunningService {
  readonly store: IppoolStore;
  readonly names: Names;
  /** Stops taking work, finishes what is in flight, publishes what is committed, closes. */
  stop(): Promise<void>;
}

const SPANS: Record<IppoolCommand["type"], string> = {
  AllocateIp: "service.ippool.allocate",
  ReleaseIp: "service.ippool.release",
  CreatePool: "service.ippool.create_pool",
  UpdatePool: "service.ippool.update_pool",
  DeletePool: "service.ippool.delete_pool",
};

/**
 * Wires the service: its database (created when missing) and migrations, the outbox relay, the
 * streams and its durable consumer, the `default` pool, the command consumer and the queries.
 */
export async function startService(config: Config): Promise<RunningService> {
  const names = namesOf(config.namespace);
  if ((await ensureDatabase(config.databaseUrl)) === "created") log.info({}, "database created");
  // One connection per command in flight, one for queries, one spare for the default pool and stats.
  const store = await openIppoolStore({
    databaseUrl: config.databaseUrl,
    names,
    poolSize: config.concurrency + 2,
  });
  const nc = await connectNats({
    servers: config.natsUrl,
    name: `ippool-service ${hostname()} ${process.pid}`,
  });
  const publisher = createPublisher(nc);

  const relay = createRelay({
    connectionString: config.databaseUrl,
    publish: (m) =>
      runInCarrier({ ...m.carrier }, async () => {
        await publisher.publish(m.subject, JSON.stringify(m.data), {
          msgId: m.messageId,
          headers: m.headers,
        });
      }),
  });
  relay.start();

  await declareTopology(await jetstreamManager(nc), names, {
    replicas: config.streamReplicas,
    consumers: [
      {
        stream: names.streams.commands,
        durable: COMMANDS_DURABLE,
        filterSubject: `${names.namespace}.cmd.${IPPOOL_SERVICE}.>`,
        ackWaitMs: config.ackWaitMs,
        maxDeliver: 10,
        description: "ippool-service: pool and allocation commands, shared by every instance",
      },
    ],
  });

  const created = await ensureDefaultPool(store, names, config.defaultPool);
  if (isRefusal(created)) log.warn({ reason: created.reason }, "the default pool could not be created");
  else if (created.length > 0) log.info({ cidr: config.defaultPool.cidr }, "default pool created");

  const consumer: ConsumerRunner = await startConsumer(nc, {
    names,
    stream: names.streams.commands,
    durable: COMMANDS_DURABLE,
    registry: commandRegistry,
    concurrency: config.concurrency,
    handle: async (envelope) => {
      const cmd = { type: envelope.type, data: envelope.data } as IppoolCommand;
      const vmId = "vmId" in cmd.data ? cmd.data.vmId : undefined;
      await withContext({ ...(vmId && { vm_id: vmId }), action: cmd.type }, () =>
        withSpan(
          SPANS[cmd.type],
          { "mikrom.message_id": envelope.messageId, ...(vmId && { "vm.id": vmId }) },
          () => handle(store, names, envelope.messageId, envelope.deliveryCount, cmd),
        ),
      );
    },
  });

  const sql = kyselySql(store.db);
  const queries: QueryServer[] = ippoolQueryHandlers(sql).map((h) =>
    serveQuery(
      nc,
      { subject: names.query(IPPOOL_SERVICE, h.def.type), request: h.def, response: h.def.response },
      async (request) => {
        const reply = await h.answer(request);
        if (reply.ok) return reply.data;
        throw new QueryFailed(reply.error.code, reply.error.message);
      },
      { queue: QUERY_GROUP },
    ),
  );
  const poolGauges = observePools(sql);
  log.info({ namespace: names.namespace, concurrency: config.concurrency }, "ippool-service started");

  return {
    store,
    names,
    async stop() {
      poolGauges.remove();
      await Promise.all([consumer.stop(), ...queries.map((q) => q.stop())]);
      await relay.stop();
      await shutdown(nc, {});
      await store.close();
      log.info({}, "ippool-service stopped");
    },
  };
}

async function handle(
  store: IppoolStore,
  names: Names,
  messageId: string,
  deliveryCount: number,
  cmd: IppoolCommand,
): Promise<void> {
  const started = performance.now();
  try {
    const outcome = await handleCommand(store, names, messageId, cmd);
    const fields = {
      message_id: messageId,
      delivery_count: deliveryCount,
      duration_ms: Math.round(performance.now() - started),
    };
    if (outcome.duplicate) {
      log.info(fields, `${cmd.type} already handled, skipped`);
      return;
    }
    const result = outcome.result;
    if (isRefusal(result)) {
      log.info({ ...fields, code: result.code, reason: result.reason }, `${cmd.type} refused`);
      return;
    }
    const [event] = result;
    if (!event) log.info(fields, `${cmd.type}: nothing to do`);
    else if (event.type === "IpAllocated")
      log.info({ ...fields, address: event.data.address, pool: event.data.pool }, "address allocated");
    else if (event.type === "IpAllocationFailed")
      log.warn({ ...fields, pool: event.data.pool, reason: event.data.reason }, "no address allocated");
    else if (event.type === "IpReleased")
      log.info({ ...fields, address: event.data.address }, "address released");
    else log.info({ ...fields, events: result.map((e) => e.type) }, `${cmd.type} done`);
  } catch (error) {
    log.error({ message_id: messageId, ...errorFields(error) }, `${cmd.type} failed`);
    throw error;
  }
}
