import type { Envelope } from "@mikrom/bus";
import type { Names } from "@mikrom/contracts";
import type { LogContext } from "@mikrom/telemetry";
import type { NewEntry } from "./store/audit-log.ts";

/**
 * What the audit log keeps of an event: where it came from (`<ns>.evt.<context>.<entity>.<Type>`),
 * who asked (the baggage the event carried) and the trace it belongs to.
 */
export function entryOf(
  names: Names,
  envelope: Envelope,
  who: LogContext,
  traceId: string | undefined,
): NewEntry {
  const { context, entityId } = names.eventParts(envelope.subject) ?? {
    context: "unknown",
    entityId: "unknown",
  };
  const data = envelope.data as Record<string, unknown>;
  const vmId = typeof data.vmId === "string" ? data.vmId : who.vm_id;
  const userId = Number(who.user_id ?? (typeof data.userId === "number" ? data.userId : Number.NaN));
  return {
    eventId: envelope.messageId,
    streamSequence: envelope.streamSequence,
    type: envelope.type,
    context,
    entityId,
    vmId: vmId ?? null,
    userId: Number.isInteger(userId) && userId > 0 ? userId : null,
    userName: who.user_name ?? null,
    traceId: traceId ?? null,
    correlationId: envelope.correlationId ?? null,
    data,
  };
}
