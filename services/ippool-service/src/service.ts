import { QueryFailed, type QueryServer, serveQuery } from "@mikrom/bus";
import { IPPOOL_SERVICE, names as namesOf } from "@mikrom/contracts";
import { startService as run, type ServiceDefinition } from "@mikrom/runtime";
import { createLogger, errorFields, withContext, withSpan } from "@mikrom/telemetry";
import type { Config } from "./config.ts";
import { commandRegistry, handleCommand, type IppoolCommand } from "./handlers/commands.ts";
import { ensureDefaultPool } from "./handlers/default-pool.ts";
import { ippoolQueryHandlers } from "./handlers/queries.ts";
import { observePools } from "./metrics.ts";
import { type IppoolStore, openIppoolStore } from "./store/event-store.ts";

const log = createLogger("mikrom.ippool-service");

/** The durable all instances share for `<ns>.cmd.ippool.>`. */
export const COMMANDS_DURABLE = "ippool-service-commands";
const QUERY_GROUP = "ippool-service";

export type RunningService = Awaited<ReturnType<typeof run<Config, IppoolStore, { store: IppoolStore }>>>;

const SPANS: Record<IppoolCommand["type"], string> = {
  AllocateIp: "service.ippool.allocate",
  ReleaseIp: "service.ippool.release",
  CreatePool: "service.ippool.create_pool",
  UpdatePool: "service.ippool.update_pool",
  DeletePool: "service.ippool.delete_pool",
};

/**
 * The service's own parts on the skeleton: its store (events, outbox, inbox and the read model),
 * the `default` pool, the command consumer all instances share, and the queries.
 */
export const ippoolService: ServiceDefinition<Config, IppoolStore, { store: IppoolStore }> = {
  name: "ippool-service",
  outbox: true,
  openStore: (config) =>
    // One connection per command in flight, one for queries, one spare for the default pool and stats.
    openIppoolStore({
      databaseUrl: config.databaseUrl,
      names: namesOf(config.namespace),
      poolSize: config.concurrency + 2,
    }),
  async start({ config, names, nc, store, untilAvailable }) {
    const created = await untilAvailable("the default pool", () =>
      ensureDefaultPool(store, config.defaultPool),
    );
    if (created === "created") log.info({ cidr: config.defaultPool.cidr }, "default pool created");
    else if (created !== "found")
      log.warn({ reason: created.reason }, "the default pool could not be created");

    const queries: QueryServer[] = ippoolQueryHandlers(store.db).map((h) =>
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
    const poolGauges = observePools(store.db);
    log.info({ namespace: names.namespace, concurrency: config.concurrency }, "ippool-service started");
    return {
      store,
      queries,
      consumers: [
        {
          stream: names.streams.commands,
          durable: COMMANDS_DURABLE,
          filterSubject: names.commandsTo(IPPOOL_SERVICE),
          ackWaitMs: config.ackWaitMs,
          maxDeliver: 10,
          description: "ippool-service: pool and allocation commands, shared by every instance",
          registry: commandRegistry,
          concurrency: config.concurrency,
          handle: async (envelope) => {
            const cmd = { type: envelope.type, data: envelope.data } as IppoolCommand;
            const vmId = "vmId" in cmd.data ? cmd.data.vmId : undefined;
            await withContext({ ...(vmId && { vm_id: vmId }), action: cmd.type }, () =>
              withSpan(
                SPANS[cmd.type],
                { "mikrom.message_id": envelope.messageId, ...(vmId && { "vm.id": vmId }) },
                () => handle(store, envelope.messageId, envelope.deliveryCount, cmd),
              ),
            );
          },
        },
      ],
      async stop() {
        poolGauges.remove();
      },
    };
  },
};

/** The service in this process (tests); `main.ts` runs it as a process. */
export const startService = (config: Config): Promise<RunningService> => run(ippoolService, config);

async function handle(
  store: IppoolStore,
  messageId: string,
  deliveryCount: number,
  cmd: IppoolCommand,
): Promise<void> {
  const started = performance.now();
  try {
    const outcome = await handleCommand(store, messageId, cmd);
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
    if (result.outcome === "refused") {
      log.info(
        { ...fields, code: result.refusal.code, reason: result.refusal.reason },
        `${cmd.type} refused`,
      );
      return;
    }
    const [event] = result.events;
    if (!event) log.info(fields, `${cmd.type}: nothing to do`);
    else if (event.type === "IpAllocated")
      log.info({ ...fields, address: event.data.address, pool: event.data.pool }, "address allocated");
    else if (event.type === "IpAllocationFailed")
      log.warn({ ...fields, pool: event.data.pool, reason: event.data.reason }, "no address allocated");
    else if (event.type === "IpReleased")
      log.info({ ...fields, address: event.data.address }, "address released");
    else log.info({ ...fields, events: result.events.map((e) => e.type) }, `${cmd.type} done`);
  } catch (error) {
    log.error({ message_id: messageId, ...errorFields(error) }, `${cmd.type} failed`);
    throw error;
  }
}
