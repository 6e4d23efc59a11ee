import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import {
  type ConsumerRunner,
  connectNats,
  createPublisher,
  declareTopology,
  type QueryServer,
  shutdown,
} from "@mikrom/bus";
import { type Names, names as namesOf, PROVISIONER_SERVICE } from "@mikrom/contracts";
import { createRelay, type Relay } from "@mikrom/eventstore";
import { ensureDatabase } from "@mikrom/runtime";
import { createLogger, errorFields, runInCarrier } from "@mikrom/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { Agent } from "./agent/agent.ts";
import { HostPresence } from "./agent/presence.ts";
import type { Config } from "./config.ts";
import { chooseDriver, type DriverChoice } from "./drivers/index.ts";
import { commandsDurable, consumeCommands } from "./handlers/commands.ts";
import { serveConsole } from "./handlers/queries.ts";
import { type AgentStore, openAgentStore } from "./store/event-store.ts";

const log = createLogger("mikrom.provisioner");

/** How long a graceful stop waits for the outbox to be published. */
const OUTBOX_DRAIN_MS = 5_000;

export interface RunningAgent {
  readonly agent: Agent;
  readonly store: AgentStore;
  readonly names: Names;
  readonly driver: DriverChoice;
  readonly presence: HostPresence;
  /**
   * Stops taking commands, finishes those in flight, says HostStopped, publishes what is recorded
   * and closes. Running VMs keep running unless `stopVmsOnExit` is set.
   */
  stop(): Promise<void>;
}

/**
 * Wires the agent: the driver (the best that works here, or MIKROM_DRIVER), the host's database
 * (created when missing), the outbox relay, the streams and the host's durable consumer, then the
 * reconcile of what the store holds, the registration, the commands, the console query and the
 * heartbeat.
 */
export async function startProvisioner(config: Config): Promise<RunningAgent> {
  const names = namesOf(config.namespace);
  const choice = await chooseDriver(config.driver);
  if ((await ensureDatabase(config.databaseUrl)) === "created") log.info({}, "database created");
  const store = await openAgentStore({
    databaseUrl: config.databaseUrl,
    names,
    // One connection per command in flight, one each for the watch, the console query and the booting records.
    poolSize: config.concurrency * 2 + 2,
  });
  const nc = await connectNats({
    servers: config.natsUrl,
    name: `provisioner ${config.hostId} ${hostname()} ${process.pid}`,
  });
  const publisher = createPublisher(nc);
  const relay: Relay = createRelay({
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
        durable: commandsDurable(config.hostId),
        filterSubject: `${names.command(PROVISIONER_SERVICE, config.hostId)}.*`,
        ackWaitMs: config.ackWaitMs,
        maxDeliver: 5,
        // Never more than the host handles at once: the rest waits at the server for a free worker.
        maxAckPending: config.concurrency,
        description: `provisioner on host ${config.hostId}: VM commands`,
      },
    ],
  });

  const agent = new Agent({
    store,
    driver: choice.driver,
    hostId: config.hostId,
    consumer: commandsDurable(config.hostId),
    withTaps: config.driver.bridge !== undefined && choice.name !== "fake",
  });
  await agent.reconcile();

  const presence = new HostPresence({
    publisher,
    names,
    agent,
    intervalMs: config.heartbeatIntervalMs,
    info: { hostId: config.hostId, driver: choice.name, vcpus: config.vcpus, memoryMb: config.memoryMb },
  });
  await presence.register();
  const consumer: ConsumerRunner = await consumeCommands(nc, agent, {
    names,
    concurrency: config.concurrency,
    publisher,
  });
  const queries: QueryServer[] = [serveConsole(nc, agent, names)];
  presence.start();
  log.info(
    {
      host_id: config.hostId,
      driver: choice.name,
      driver_reason: choice.reason,
      namespace: names.namespace,
      vcpus: config.vcpus,
      memory_mb: config.memoryMb,
      concurrency: config.concurrency,
    },
    `provisioner agent started on host ${config.hostId} with the ${choice.name} driver`,
  );

  let stopped: Promise<void> | undefined;
  return {
    agent,
    store,
    names,
    driver: choice,
    presence,
    stop() {
      stopped ??= (async () => {
        await Promise.all([consumer.stop(), ...queries.map((q) => q.stop())]);
        if (config.stopVmsOnExit) await agent.stopAll();
        await presence.stop();
        await drainOutbox(store);
        await relay.stop();
        await choice.driver.close();
        await shutdown(nc, {});
        await store.close();
        log.info({ host_id: config.hostId }, "provisioner agent stopped; its VMs run on");
      })();
      return stopped;
    },
  };
}

/** Gives the relay a moment to publish what is recorded; what is left goes at the next start. */
async function drainOutbox(store: AgentStore): Promise<void> {
  const deadline = Date.now() + OUTBOX_DRAIN_MS;
  try {
    while ((await store.outboxBacklog()) > 0) {
      if (Date.now() > deadline) {
        log.warn({}, "outbox not empty at stop; the rest is published at the next start");
        return;
      }
      await delay(20);
    }
  } catch (error) {
    log.warn(errorFields(error), "could not read the outbox backlog");
  }
}
