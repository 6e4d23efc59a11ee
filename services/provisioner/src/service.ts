import { names as namesOf, PROVISIONER_SERVICE } from "@mikrom/contracts";
import { type RunningService, type ServiceDefinition, startService } from "@mikrom/runtime";
import { createLogger } from "@mikrom/telemetry";
import { Agent, type AgentCommand } from "./agent/agent.ts";
import { HostPresence } from "./agent/presence.ts";
import type { Config } from "./config.ts";
import { chooseDriver, type DriverChoice } from "./drivers/index.ts";
import { commandRegistry, commandsDurable } from "./handlers/commands.ts";
import { serveConsole } from "./handlers/queries.ts";
import { type AgentStore, openAgentStore } from "./store/event-store.ts";

const log = createLogger("mikrom.provisioner");

export interface AgentParts {
  readonly agent: Agent;
  readonly driver: DriverChoice;
  readonly presence: HostPresence;
}
/**
 * A running agent: stopping it stops taking commands, finishes those in flight, says HostStopped,
 * publishes what is recorded and closes. Running VMs keep running unless `stopVmsOnExit` is set.
 */
export type RunningAgent = RunningService<AgentStore> & AgentParts;

/**
 * The agent on the skeleton: the driver (the best that works here, or MIKROM_DRIVER), the host's
 * store, the reconcile of what the store holds, the registration, the host's command consumer, the
 * console query, the heartbeat and the watch for VMs whose process ended.
 */
export const provisionerService: ServiceDefinition<Config, AgentStore, AgentParts> = {
  name: "provisioner",
  outbox: true,
  openStore: (config) =>
    openAgentStore({
      databaseUrl: config.databaseUrl,
      names: namesOf(config.namespace),
      // One connection per command in flight, one each for the watch, the console query and the booting records.
      poolSize: config.concurrency * 2 + 2,
    }),
  async start({ config, names, nc, store, publisher, untilAvailable }) {
    const choice = await chooseDriver(config.driver);
    const durable = commandsDurable(config.hostId);
    const agent = new Agent({
      store,
      driver: choice.driver,
      hostId: config.hostId,
      consumer: durable,
      withTaps: config.driver.bridge !== undefined && choice.name !== "fake",
    });
    await untilAvailable("the host's store", () => agent.reconcile());
    const presence = new HostPresence({
      publisher,
      nc,
      names,
      runningVms: () => agent.runningVms(),
      intervalMs: config.heartbeatIntervalMs,
      info: { hostId: config.hostId, driver: choice.name, vcpus: config.vcpus, memoryMb: config.memoryMb },
    });
    // The watch needs only the database: VMs that die while NATS is away are reported when it returns.
    agent.watch.start(config.heartbeatIntervalMs);
    // Waits for NATS as long as it is away; a start given up on (stop meanwhile) ends the watch too.
    await untilAvailable("NATS", () => presence.register()).catch(async (error: unknown) => {
      await agent.watch.stop();
      throw error;
    });
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
    return {
      agent,
      driver: choice,
      presence,
      queries: [serveConsole(nc, agent, names)],
      consumers: [
        {
          stream: names.streams.commands,
          durable,
          filterSubject: names.commandsTo(PROVISIONER_SERVICE, config.hostId),
          ackWaitMs: config.ackWaitMs,
          maxDeliver: 5,
          // Never more than the host handles at once: the rest waits at the server for a free worker.
          maxAckPending: config.concurrency,
          description: `provisioner on host ${config.hostId}: VM commands`,
          registry: commandRegistry,
          concurrency: config.concurrency,
          // Each worker pulls one message at a time (a boot is slow work; the bus sends `working`
          // acks meanwhile); the agent serializes the commands of one VM.
          handle: (envelope) =>
            agent.handle({ type: envelope.type, data: envelope.data } as AgentCommand, {
              messageId: envelope.messageId,
              correlationId: envelope.correlationId,
            }),
        },
      ],
      async stop() {
        await agent.watch.stop();
        if (config.stopVmsOnExit) await agent.stopAll();
        await presence.stop();
        await choice.driver.close();
        log.info({ host_id: config.hostId }, "provisioner agent stopped; its VMs run on");
      },
    };
  },
};

/** The agent in this process (tests); `main.ts` runs it as a process. */
export function startProvisioner(config: Config): Promise<RunningAgent> {
  return startService(provisionerService, config);
}
