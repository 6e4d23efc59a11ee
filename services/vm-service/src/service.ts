import { type Envelope, PermanentFailure, queued } from "@mikrom/bus";
import {
  CommandRejected,
  HOST_CONTEXT,
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  hostOfFact,
  IPPOOL_SERVICE,
  ippoolEvents,
  type MessageDef,
  type Names,
  names as namesFor,
  PROVISIONER_SERVICE,
  provisionerEvents,
  Registry,
  VM_SERVICE,
  vmCommands,
} from "@mikrom/contracts";
import { type RunningService, type ServiceDefinition, startService } from "@mikrom/runtime";
import type { Config } from "./config.ts";
import type { VmCommand } from "./domain/decide.ts";
import type { ProcessInput } from "./domain/lifecycle.ts";
import { onVmCommand } from "./handlers/commands.ts";
import type { Delivery, HandlerDeps } from "./handlers/context.ts";
import { onProcessEvent } from "./handlers/events.ts";
import { listenHeartbeats } from "./handlers/heartbeats.ts";
import { type HostEvent, onHostEvent } from "./handlers/host-registry.ts";
import { serveQueries } from "./handlers/queries.ts";
import { type SweepReport, startSweeper, sweepOnce } from "./handlers/sweeper.ts";
import { observeVmStatuses } from "./metrics.ts";
import { openVmStore, type VmStore } from "./store/vm-store.ts";

export interface VmParts {
  readonly deps: HandlerDeps;
  /** Runs one sweep of deadlines, resends and hosts now (tests, the benchmark). */
  sweep(): Promise<SweepReport>;
}
export type VmService = RunningService<VmStore> & VmParts;

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

/**
 * A host's fact as the handlers take it: only when its subject, which NATS lets only that host's
 * user publish to, names the host its payload speaks for. Anything else is a host speaking for
 * another, and goes to the dead letters with that reason.
 */
function hostFact<M>(names: Names, e: Envelope<MessageDef>): Delivery<M> {
  const data = e.data as { hostId: string };
  if (hostOfFact(names, e.subject, data) === null)
    throw new PermanentFailure(
      `a fact about host ${data.hostId} published on ${e.subject}, another host's subject`,
    );
  return delivery<M>(e);
}

/**
 * The VM service on the skeleton: its store, its four consumers (its commands, and the answers of the
 * IP pool, the provisioners and the hosts' presence), the hosts' heartbeats, its queries, and the
 * sweeper of deadlines and hosts.
 */
export function vmService(
  opts: { now?: () => number; onDecision?: (ms: number) => void } = {},
): ServiceDefinition<Config, VmStore, VmParts> {
  return {
    name: "vm-service",
    outbox: true,
    // Three consumers at `lanes` each, the host consumer, the sweeper and queries: every handler gets a
    // connection without queueing behind another.
    openStore: (config) =>
      openVmStore(config.databaseUrl, namesFor(config.namespace), 3 * config.handlerConcurrency + 8),
    async start({ config, names, nc, store }) {
      const lanes = config.handlerConcurrency;
      const deps: HandlerDeps = {
        store,
        db: store.db,
        names,
        config,
        deadlines: config.deadlines,
        resendAfterMs: config.resendAfterMs,
        now: opts.now ?? Date.now,
        startedAtMs: (opts.now ?? Date.now)(),
        commandsWaiting: async (filter) => (await queued(nc, names.streams.commands, filter)) > 0,
        ...(opts.onDecision ? { onDecision: opts.onDecision } : {}),
      };
      const retry = { maxDeliver: 10 };
      const ippool = "vm-service-ippool-events";
      const provisioner = "vm-service-provisioner-events";
      const queries = serveQueries({ ...deps, nc });
      let sweeper: { stop(): Promise<void> } | undefined;
      let heartbeats: ReturnType<typeof listenHeartbeats> | undefined;
      const statusGauge = observeVmStatuses(store.db);
      return {
        deps,
        sweep: () => sweepOnce(deps),
        queries,
        consumers: [
          {
            ...retry,
            stream: names.streams.commands,
            durable: "vm-service-commands",
            filterSubject: names.commandsTo(VM_SERVICE),
            registry: new Registry(vmCommands),
            concurrency: lanes,
            handle: async (e) => {
              await onVmCommand(deps, delivery<VmCommand>(e));
            },
          },
          {
            ...retry,
            stream: names.streams.events,
            durable: ippool,
            filterSubject: names.eventsOf(IPPOOL_SERVICE),
            // A refusal of an admin's pool command (CommandRejected) shares the subjects: taken, ignored.
            registry: new Registry([...ippoolEvents, CommandRejected]),
            concurrency: lanes,
            handle: async (e) => {
              if (ALLOCATION_TYPES.has(e.type)) await onProcessEvent(ippool)(deps, delivery<ProcessInput>(e));
            },
          },
          {
            ...retry,
            stream: names.streams.events,
            durable: provisioner,
            filterSubject: names.eventsOf(PROVISIONER_SERVICE),
            registry: new Registry(provisionerEvents),
            concurrency: lanes,
            handle: async (e) => {
              await onProcessEvent(provisioner)(deps, hostFact<ProcessInput>(names, e));
            },
          },
          {
            ...retry,
            stream: names.streams.events,
            durable: "vm-service-host-events",
            filterSubject: names.eventsOf(HOST_CONTEXT),
            registry: new Registry([HostRegistered, HostHeartbeat, HostStopped]),
            concurrency: 2,
            handle: (e) => onHostEvent(deps, hostFact<HostEvent>(names, e)),
          },
        ],
        // Deadlines are judged from when the answers can be read, not from when the process began.
        whenConsuming() {
          const listening = listenHeartbeats(deps, nc);
          heartbeats = listening;
          sweeper = startSweeper({ ...deps, startedAtMs: deps.now(), writeHeartbeats: listening.flush });
        },
        async stop() {
          statusGauge.remove();
          await Promise.all([sweeper?.stop(), heartbeats?.stop()]);
        },
      };
    },
  };
}

/** The service in this process (tests, the benchmark); `main.ts` runs it as a process. */
export function startVmService(
  config: Config,
  opts: { now?: () => number; onDecision?: (ms: number) => void } = {},
): Promise<VmService> {
  return startService(vmService(opts), config);
}
