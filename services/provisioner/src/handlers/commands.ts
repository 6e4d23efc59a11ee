import { type ConsumerRunner, type Publisher, startConsumer } from "@mikrom/bus";
import { type Names, provisionerCommands, Registry } from "@mikrom/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Agent, AgentCommand } from "../agent/agent.ts";

export const commandRegistry = new Registry(provisionerCommands);

/** The durable consumer of one host's commands, `<ns>.cmd.provisioner.<hostId>.*`. */
export function commandsDurable(hostId: string): string {
  return `provisioner-${hostId}`;
}

/**
 * Feeds the host's commands to the agent. Each worker pulls one message at a time (a boot is slow
 * work; the bus sends `working` acks meanwhile); the agent serializes the commands of one VM.
 */
export function consumeCommands(
  nc: NatsConnection,
  agent: Agent,
  options: { names: Names; concurrency: number; publisher?: Publisher },
): Promise<ConsumerRunner> {
  return startConsumer(nc, {
    names: options.names,
    stream: options.names.streams.commands,
    durable: commandsDurable(agent.hostId),
    registry: commandRegistry,
    concurrency: options.concurrency,
    ...(options.publisher ? { publisher: options.publisher } : {}),
    handle: (envelope) =>
      agent.handle({ type: envelope.type, data: envelope.data } as AgentCommand, {
        messageId: envelope.messageId,
        correlationId: envelope.correlationId,
      }),
  });
}
