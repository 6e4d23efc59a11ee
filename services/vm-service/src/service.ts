import {
  type ConsumerRunner,
  type ConsumerSpec,
  connectNats,
  createPublisher,
  declareTopology,
  type Envelope,
  shutdown,
  startConsumer,
} from "@mikrom/bus";
import {
  HOST_CONTEXT,
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  IPPOOL_SERVICE,
  ippoolEvents,
  type MessageDef,
  names as namesFor,
  PROVISIONER_SERVICE,
  provisionerEvents,
  Registry,
  VM_SERVICE,
  vmCommands,
} from "@mikrom/contracts";
import { createRelay, type Relay } from "@mikrom/eventstore";
import { ensureDatabase } from "@mikrom/runtime";
import { runInCarrier } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "./config.ts";
import type { VmCommand } from "./domain/decide.ts";
import type { ProcessInput } from "./domain/lifecycle.ts";
import { onVmCommand } from "./handlers/commands.ts";
import type { Delivery, HandlerDeps } from "./handlers/context.ts";
import { type HostEvent, onHostEvent, onProcessEvent } from "./handlers/events.ts";
import { serveQueries } from "./handlers/queries.ts";
import { startSweeper, sweepOnce } from "./handlers/sweeper.ts";
import { observeVmStatuses } from "./metrics.ts";
import { openVmStore } from "./store/vm-store.ts";

export interface VmService {
  readonly deps: HandlerDeps;
  readonly nc: NatsConnection;
  readonly relay: Relay;
  /** Runs one sweep of deadlines and hosts now (tests, the benchmark). */
  sweep(): Promise<{ deadlines: number; hostsLost: number }>;
  stop(): Promise<void>;
}

/** Allocation news; the pool events that share the subject family do not concern VMs. */
const ALLOCATION_TYPES = new Set(["IpAllocated", "IpAllocationFailed", "IpReleased"]);

function delivery<M>(e: Envelope<MessageDef>): Delivery<M> {
  return {
    message: { type: e.type, data: e.data } as M,
    messageId: e.messageId,
    correlationId: e.correlationId ?? null,
    causationId: e.causationId ?? null,
  };
}

/** Starts everything but telemetry: database, streams and consumers, queries, outbox relay, sweeper. */
export async function startVmService(
  config: Config,
  opts: { now?: () => number; onDecision?: (ms: number) => void } = {},
): Promise<VmService> {
  const names = namesFor(config.namespace);
  const lanes = config.handlerConcurrency;
  await ensureDatabase(config.databaseUrl);
  // Three consumers at `lanes` each, the host consumer, the sweeper and queries: every handler gets a
  // connection without queueing behind another.
  const store = await openVmStore(config.databaseUrl, names, 3 * lanes + 8);
  const nc = await connectNats({ servers: config.natsUrl, name: "vm-service" });
  const publisher = createPublisher(nc);

  const consumerSpecs: ConsumerSpec[] = [
    {
      stream: names.streams.commands,
      durable: "vm-service-commands",
      filterSubject: `${names.namespace}.cmd.${VM_SERVICE}.>`,
    },
    {
      stream: names.streams.events,
      durable: "vm-service-ippool-events",
      filterSubject: `${names.namespace}.evt.${IPPOOL_SERVICE}.*.*`,
    },
    {
      stream: names.streams.events,
      durable: "vm-service-provisioner-events",
      filterSubject: `${names.namespace}.evt.${PROVISIONER_SERVICE}.*.*`,
    },
    {
      stream: names.streams.events,
      durable: "vm-service-host-events",
      filterSubject: `${names.namespace}.evt.${HOST_CONTEXT}.*.*`,
    },
  ].map((c) => ({ ...c, maxDeliver: 10, backoffMs: [30_000] }));
  await declareTopology(await jetstreamManager(nc), names, {
    consumers: consumerSpecs,
    replicas: config.streamReplicas,
  });

  const deps: HandlerDeps = {
    store,
    db: store.db,
    names,
    config,
    deadlines: config.deadlines,
    now: opts.now ?? Date.now,
    ...(opts.onDecision ? { onDecision: opts.onDecision } : {}),
  };

  const relay = createRelay({
    connectionString: config.databaseUrl,
    // Published inside the trace context stored with the event, so the trace runs on to the receiver.
    publish: (m) =>
      runInCarrier({ ...m.carrier }, async () => {
        await publisher.publish(m.subject, JSON.stringify(m.data), {
          msgId: m.messageId,
          headers: m.headers,
        });
      }),
  });
  relay.start();

  const [commands, ippool, provisioner, hosts] = consumerSpecs.map((s) => s.durable) as [
    string,
    string,
    string,
    string,
  ];
  const consumers: ConsumerRunner[] = [
    await startConsumer(nc, {
      names,
      stream: names.streams.commands,
      durable: commands,
      registry: new Registry(vmCommands),
      concurrency: lanes,
      handle: async (e) => {
        await onVmCommand(deps, delivery<VmCommand>(e));
      },
    }),
    await startConsumer(nc, {
      names,
      stream: names.streams.events,
      durable: ippool,
      registry: new Registry(ippoolEvents),
      concurrency: lanes,
      handle: async (e) => {
        if (ALLOCATION_TYPES.has(e.type)) await onProcessEvent(ippool)(deps, delivery<ProcessInput>(e));
      },
    }),
    await startConsumer(nc, {
      names,
      stream: names.streams.events,
      durable: provisioner,
      registry: new Registry(provisionerEvents),
      concurrency: lanes,
      handle: async (e) => {
        await onProcessEvent(provisioner)(deps, delivery<ProcessInput>(e));
      },
    }),
    await startConsumer(nc, {
      names,
      stream: names.streams.events,
      durable: hosts,
      registry: new Registry([HostRegistered, HostHeartbeat, HostStopped]),
      concurrency: 2,
      handle: (e) => onHostEvent(deps, delivery<HostEvent>(e)),
    }),
  ];
  const queries = serveQueries({ ...deps, nc });
  // Ready means answering: the server knows the query subscriptions before anyone is told we are up.
  await nc.flush();
  const sweeper = startSweeper(deps);
  const statusGauge = observeVmStatuses(store.db);

  return {
    deps,
    nc,
    relay,
    sweep: () => sweepOnce(deps),
    async stop() {
      // Nothing new is decided, then the outbox is flushed while NATS is still there, then NATS drains.
      statusGauge.remove();
      await sweeper.stop();
      await Promise.all([
        ...consumers.map((c) => c.stop({ timeoutMs: 10_000 })),
        ...queries.map((q) => q.stop()),
      ]);
      await relay.stop();
      await shutdown(nc, {});
      await store.close();
    },
  };
}
