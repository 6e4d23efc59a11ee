import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/**
 * How many messages on `filter` a work-queue stream (the commands stream) still holds: the commands
 * their receiver has not taken yet, because it is away or behind. One request to JetStream.
 */
export async function queued(nc: NatsConnection, stream: string, filter: string): Promise<number> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
}
