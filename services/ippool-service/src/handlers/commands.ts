import { type AllocateIp, ippoolCommands, type MessageOf, Registry, type ReleaseIp } from "@mikrom/contracts";
import type { HandleResult, Once } from "@mikrom/eventstore";
import type { PoolCommand } from "../domain/pool.ts";
import type { IppoolStore } from "../store/event-store.ts";
import type { IppoolEvent } from "../store/projection.ts";
import { allocateIp, releaseIp } from "./allocation.ts";
import { handlePoolCommand } from "./pools.ts";

export const commandRegistry = new Registry(ippoolCommands);
export type IppoolCommand = PoolCommand | MessageOf<typeof AllocateIp> | MessageOf<typeof ReleaseIp>;

/** The inbox name of this service's command consumer. */
export const COMMAND_CONSUMER = "ippool-commands";

/**
 * Handles one command exactly once per message id: the inbox row, the decision, the events, the
 * read model and the outbox commit together; a redelivered or re-published message is a duplicate
 * and does nothing. Throws only for infrastructure failures (the message is then redelivered).
 */
export function handleCommand(
  store: IppoolStore,
  messageId: string,
  cmd: IppoolCommand,
): Promise<Once<HandleResult<unknown, IppoolEvent, readonly IppoolEvent[]>>> {
  return store.handleOnce(COMMAND_CONSUMER, messageId, async (session) => {
    switch (cmd.type) {
      case "AllocateIp":
        return allocateIp(session, cmd);
      case "ReleaseIp":
        return releaseIp(session, cmd);
      case "CreatePool":
      case "UpdatePool":
      case "DeletePool":
        return handlePoolCommand(session, cmd);
    }
  });
}
