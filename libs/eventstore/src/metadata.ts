import { getContext, injectCarrier } from "@mikrom/telemetry";
import type { Actor, EventMetadata, MetadataInput } from "./event.ts";

function actorFromContext(): Actor | undefined {
  const { user_id, user_name } = getContext();
  if (user_id === undefined && user_name === undefined) return undefined;
  return {
    ...(user_id !== undefined && { userId: user_id }),
    ...(user_name !== undefined && { userName: user_name }),
  };
}

/**
 * The metadata of events appended now: what the caller set, else what the operation's context holds
 * (request id as correlation, user as actor), and always the active trace context.
 */
export function currentMetadata(
  input: MetadataInput | undefined,
  causationId: string | undefined,
): EventMetadata {
  const trace: Record<string, string> = {};
  injectCarrier(trace);
  const correlationId = input?.correlationId ?? getContext().request_id;
  const causation = input?.causationId ?? causationId;
  const actor = input?.actor ?? actorFromContext();
  return {
    ...(correlationId !== undefined && { correlationId }),
    ...(causation !== undefined && { causationId: causation }),
    ...(actor !== undefined && { actor }),
    ...(Object.keys(trace).length > 0 && { trace }),
  };
}
